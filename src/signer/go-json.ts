// JSON as Go's encoding/json reads and writes it, for the remote signer's wire (go-livepeer's
// server/remote_signer.go decodes requests and state with it). What differs from JSON.parse:
// numbers keep their text (int64 and json.Number fields exceed 2^53), object keys match struct
// fields case-insensitively (the last matching key wins), and []byte fields are standard base64.

/** A JSON number as written: Go reads int64, uint32 and json.Number from the text itself. */
export class JsonNumber {
  constructor(readonly raw: string) {}
}

/** A JSON object with its keys in order, looked up the way Go fills a struct. */
export class JsonObject {
  constructor(readonly entries: readonly (readonly [string, JsonValue])[]) {}

  /** The value of the last key equal to `name` ignoring case (Go's field match), if any. */
  get(name: string): JsonValue | undefined {
    const lower = name.toLowerCase();
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const [k, v] = this.entries[i]!;
      if (k === name || k.toLowerCase() === lower) return v;
    }
    return undefined;
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Input that is not JSON, or a field of the wrong type: the caller answers 400 with the message. */
export class GoJsonError extends Error {
  override readonly name = 'GoJsonError';
}

const MAX_DEPTH = 64;

/** Parses one JSON value (surrounding whitespace allowed). Invalid UTF-8 becomes U+FFFD, as in Go. */
export function parseGoJson(input: Uint8Array | string): JsonValue {
  const text = typeof input === 'string' ? input : new TextDecoder().decode(input);
  const p = new Parser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) p.fail('unexpected data after the JSON value');
  return v;
}

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

  fail(what: string): never {
    throw new GoJsonError(`invalid JSON at offset ${this.i}: ${what}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.i++;
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail('nested too deeply');
    const c = this.s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
  }

  object(depth: number): JsonObject {
    this.i++;
    const entries: [string, JsonValue][] = [];
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return new JsonObject(entries);
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a key');
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      this.ws();
      entries.push([key, this.value(depth + 1)]);
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return new JsonObject(entries);
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }

  array(depth: number): JsonValue[] {
    this.i++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }

  number(): JsonNumber {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) this.fail('bad number');
    this.i += m[0].length;
    return new JsonNumber(m[0]);
  }

  string(): string {
    const s = this.s;
    this.i++;
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('control character in a string');
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      const e = s[this.i + 1];
      this.i += 2;
      const simple: Record<string, string> = {
        '"': '"',
        '\\': '\\',
        '/': '/',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
      };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'u') {
        const hex = s.slice(this.i, this.i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.i += 4;
      } else this.fail('bad escape');
      start = this.i;
    }
  }
}

// Typed readers for struct fields, with Go's rules: null (or an absent key) is the zero value.

export function asObject(v: JsonValue | undefined, what: string): JsonObject | undefined {
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof JsonObject)) throw new GoJsonError(`${what} must be a JSON object`);
  return v;
}

export function asString(v: JsonValue | undefined, what: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new GoJsonError(`${what} must be a string`);
  return v;
}

/** A Go integer field (int64, uint32, uint64): a JSON number with no fraction or exponent, in range. */
export function asInteger(v: JsonValue | undefined, what: string, min: bigint, max: bigint): bigint {
  if (v === undefined || v === null) return 0n;
  if (!(v instanceof JsonNumber) || !/^-?\d+$/.test(v.raw)) {
    throw new GoJsonError(`${what} must be a whole number`);
  }
  const n = BigInt(v.raw);
  if (n < min || n > max) throw new GoJsonError(`${what} is out of range`);
  return n;
}

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
export const UINT32_MAX = 2n ** 32n - 1n;
export const UINT64_MAX = 2n ** 64n - 1n;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A Go []byte field: standard base64 with padding (Go skips \r and \n in it); null is no bytes. */
export function asBytes(v: JsonValue | undefined, what: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (typeof v !== 'string') throw new GoJsonError(`${what} must be a base64 string`);
  const s = v.replace(/[\r\n]/g, '');
  if (!BASE64.test(s)) throw new GoJsonError(`${what} is not standard base64`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** A json.Number field: a JSON number, or a string holding one. */
export function asNumberText(v: JsonValue | undefined, what: string): string {
  if (v === undefined || v === null) return '';
  if (v instanceof JsonNumber) return v.raw;
  if (typeof v === 'string' && /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(v)) return v;
  throw new GoJsonError(`${what} must be a number`);
}

/**
 * A string as Go's json.Marshal writes it: `<`, `>` and `&` (and U+2028, U+2029) escaped as
 * \u00XX, so that signed bytes we make match what a Go signer would make of the same value.
 */
export function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
