import { isIP } from 'node:net';
import { Secret } from './secret.ts';

/**
 * A raw value as it arrives from a layer: a string from argv/env/YAML scalars (YAML is read
 * with the failsafe schema, so `12abc` and `1.50` stay exactly as written), or a YAML
 * sequence/mapping.
 */
export type Raw = string | readonly Raw[] | { readonly [k: string]: Raw };

/** Thrown by parsers; turned into a ConfigError carrying the key and source by the caller. */
export class Invalid extends Error {
  /** When set, shown after "got" instead of the whole raw value (e.g. one bad list item). */
  readonly got: Raw | undefined;
  constructor(problem: string, got?: Raw) {
    super(problem);
    this.got = got;
  }
}

/** What parsers may need besides the value: the directory relative paths are resolved against. */
export interface ParseContext {
  readonly cwd: string;
}

export type Parser<T> = (raw: Raw, ctx: ParseContext) => T;

export interface ListenAddr {
  /** Host to bind; `0.0.0.0` when the address was given as `:port`. IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  /** Normalised `host:port` (`[v6]:port` for IPv6). */
  readonly addr: string;
}

export interface IceServer {
  readonly urls: readonly string[];
  readonly username?: string;
  /** TURN credential; `reveal()` it when handing it to the WebRTC stack. */
  readonly credential?: Secret;
}

const MAX_TIMER_MS = 2_147_483_647; // setTimeout's limit (~24.8 days)

export function scalar(raw: Raw): string {
  if (typeof raw !== 'string')
    throw new Invalid(
      Array.isArray(raw) ? 'must be a single value, not a list' : 'must be a single value, not a mapping',
    );
  return raw.trim();
}

export function string(raw: Raw): string {
  const s = scalar(raw);
  if (s === '') throw new Invalid('must not be empty');
  return s;
}

/** Wraps a parser so that an empty value means "not set". */
export function optional<T>(p: Parser<T>): Parser<T | undefined> {
  return (raw, ctx) => (typeof raw === 'string' && raw.trim() === '' ? undefined : p(raw, ctx));
}

export function bool(raw: Raw): boolean {
  const s = scalar(raw);
  // The same spellings as Go's strconv.ParseBool, used by the flag package.
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  throw new Invalid('must be true or false');
}

function integerText(s: string, what: string): void {
  if (s === '') throw new Invalid(`must be ${what}, not empty`);
  if (/^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$/.test(s) && !/^[+-]?\d+$/.test(s)) {
    throw new Invalid(`must be a whole number (${what})`);
  }
  if (!/^-?\d+$/.test(s)) throw new Invalid(`must be ${what}`);
}

export function int(opts: { min: number; max?: number }): Parser<number> {
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  const what = opts.min >= 1 ? 'a positive integer' : opts.min >= 0 ? 'a non-negative integer' : 'an integer';
  return (raw) => {
    const s = scalar(raw);
    integerText(s, what);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new Invalid(`is too large (max ${max})`);
    if (n < opts.min)
      throw new Invalid(opts.min === 0 ? 'must not be negative' : `must be at least ${opts.min}`);
    if (n > max) throw new Invalid(`must be at most ${max}`);
    return n;
  };
}

export function bigint(opts: { min: bigint }): Parser<bigint> {
  const what =
    opts.min >= 1n ? 'a positive integer' : opts.min >= 0n ? 'a non-negative integer' : 'an integer';
  return (raw) => {
    const s = scalar(raw);
    integerText(s, what);
    const n = BigInt(s);
    if (n < opts.min)
      throw new Invalid(opts.min === 0n ? 'must not be negative' : `must be at least ${opts.min}`);
    return n;
  };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Durations in milliseconds: a plain integer is milliseconds; otherwise Go's
 * time.ParseDuration syntax restricted to ms/s/m/h: `500ms`, `5s`, `1.5s`, `2m`, `1m30s`.
 */
export function duration(opts: { min: number; max?: number }): Parser<number> {
  const max = Math.min(opts.max ?? MAX_TIMER_MS, MAX_TIMER_MS);
  return (raw) => {
    const s = scalar(raw);
    if (s === '') throw new Invalid('must be a duration like 500ms, 5s or 2m, not empty');
    let ms: number;
    if (/^\d+$/.test(s)) {
      ms = Number(s);
    } else {
      if (s.startsWith('-')) throw new Invalid('must not be negative');
      const re = /(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)/y;
      ms = 0;
      let pos = 0;
      while (pos < s.length) {
        re.lastIndex = pos;
        const m = re.exec(s);
        if (!m) throw new Invalid('must be a duration like 500ms, 5s, 2m or 1m30s (units ms, s, m, h)');
        ms += Number(m[1]) * UNIT_MS[m[2]];
        pos = re.lastIndex;
      }
      const rounded = Math.round(ms);
      if (Math.abs(ms - rounded) > 1e-6) throw new Invalid('must be a whole number of milliseconds');
      ms = rounded;
    }
    if (!Number.isFinite(ms) || ms > max) throw new Invalid(`must be at most ${max}ms`);
    if (ms < opts.min) throw new Invalid(`must be at least ${opts.min}ms`);
    return ms;
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (raw) => {
    const s = scalar(raw);
    if ((values as readonly string[]).includes(s)) return s as T;
    throw new Invalid(`must be one of ${values.join(', ')}`);
  };
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

function port(text: string, got: string, min = 1): number {
  if (!/^\d{1,5}$/.test(text))
    throw new Invalid(
      text === '' ? 'is missing a port (expected host:port)' : 'has a port that is not a number',
      got,
    );
  const p = Number(text);
  if (p < min || p > 65535) throw new Invalid(`has a port outside ${min}..65535`, got);
  return p;
}

function host(text: string, got: string): string {
  if (text.startsWith('[')) {
    if (!text.endsWith(']') || isIP(text.slice(1, -1)) !== 6)
      throw new Invalid('has an invalid IPv6 host', got);
    return text.slice(1, -1);
  }
  if (isIP(text) === 4 || HOSTNAME.test(text)) return text;
  if (text.includes(':')) throw new Invalid('has an IPv6 host without [brackets]', got);
  throw new Invalid('has an invalid host', got);
}

function splitHostPort(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  if (i < 0) return [s, ''];
  return [s.slice(0, i), s.slice(i + 1)];
}

function joinHostPort(h: string, p: number): string {
  return h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`;
}

/** A listen address as Go's net.Listen takes it: `host:port`, `:port` (all interfaces) or `[v6]:port`. */
export function listenAddr(raw: Raw): ListenAddr {
  return parseListenAddr(raw, 1);
}

/** Like listenAddr, but port 0 is allowed too: it picks a free port at start-up. */
export function listenAddrOrFreePort(raw: Raw): ListenAddr {
  return parseListenAddr(raw, 0);
}

function parseListenAddr(raw: Raw, minPort: number): ListenAddr {
  const s = scalar(raw);
  if (s === '') throw new Invalid('must be host:port or :port, not empty');
  if (s.includes('://')) throw new Invalid('must be host:port or :port, without a scheme');
  const [h, p] = splitHostPort(s);
  if (!s.includes(':')) throw new Invalid('is missing a port (expected host:port or :port)');
  const portNum = port(p, s, minPort);
  const hostName = h === '' ? '0.0.0.0' : host(h, s);
  return { host: hostName, port: portNum, addr: joinHostPort(hostName, portNum) };
}

/** One orchestrator address, `host:port` or `https://host[:port]`, normalised to `https://host:port`. */
export function orchUrl(item: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(item)) {
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      throw new Invalid('has an invalid URL', item);
    }
    if (u.protocol !== 'https:')
      throw new Invalid('must use https:// (orchestrators always serve TLS)', item);
    if (u.username || u.password) throw new Invalid('must not contain credentials', item);
    if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
      throw new Invalid('must be just https://host:port, without a path or query', item);
    }
    const h = u.hostname;
    return `https://${h}:${u.port === '' ? 443 : Number(u.port)}`;
  }
  if (item.includes('/')) throw new Invalid('must be host:port or https://host:port', item);
  const [h, p] = splitHostPort(item);
  if (!item.includes(':')) throw new Invalid('is missing a port (expected host:port)', item);
  const portNum = port(p, item);
  if (h === '') throw new Invalid('is missing a host (expected host:port)', item);
  const hostName = host(h, item);
  return `https://${joinHostPort(hostName, portNum)}`;
}

/**
 * A list: a comma-separated string (flags, env, YAML) or a YAML sequence of scalars.
 * Blank items are skipped, duplicates dropped (first wins).
 */
export function list<T>(item: (s: string) => T): Parser<readonly T[]> {
  return (raw) => {
    let items: string[];
    if (typeof raw === 'string') items = raw.split(',');
    else if (Array.isArray(raw)) {
      items = raw.map((r: Raw) => {
        if (typeof r !== 'string') throw new Invalid('must be a list of single values', r);
        return r;
      });
    } else throw new Invalid('must be a comma-separated list or a YAML list');
    const out: T[] = [];
    const seen = new Set<string>();
    for (const it of items.map((s) => s.trim()).filter((s) => s !== '')) {
      const v = item(it);
      const k = String(v);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(v);
      }
    }
    return out;
  };
}

export function url(schemes: readonly string[]): Parser<string> {
  const allowed = schemes.map((s) => `${s}://`).join(' or ');
  return (raw) => {
    const s = scalar(raw);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new Invalid(`must be a URL starting with ${allowed}`);
    }
    if (!schemes.includes(u.protocol.slice(0, -1)))
      throw new Invalid(`must be a URL starting with ${allowed}`);
    return u.href;
  };
}

export function ethAddress(raw: Raw): `0x${string}` {
  const s = scalar(raw);
  if (!/^0x[0-9a-fA-F]{40}$/.test(s))
    throw new Invalid('must be an Ethereum address (0x followed by 40 hex digits)');
  return s as `0x${string}`;
}

/** Model ids such as `invert` or `org/model-v1.5`. */
export function modelId(s: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/.test(s)) {
    throw new Invalid('must be model ids made of letters, digits and . _ / -', s);
  }
  return s;
}

const ICE_URL = /^(stun|stuns|turn|turns):[^\s,]+$/;

function iceUrl(u: string): string {
  if (!ICE_URL.test(u)) throw new Invalid('must be stun:, stuns:, turn: or turns: URLs', u);
  return u;
}

function redactIce(raw: Raw): Raw {
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'credential' in raw) {
    return { ...(raw as Record<string, Raw>), credential: '<hidden>' };
  }
  return raw;
}

function iceServer(raw: Raw): IceServer {
  if (typeof raw === 'string') {
    try {
      return iceServer({ urls: raw });
    } catch (err) {
      throw err instanceof Invalid ? new Invalid(err.message, raw) : err;
    }
  }
  if (raw === null || Array.isArray(raw) || typeof raw !== 'object')
    throw new Invalid('must be a list of {urls, username?, credential?}', redactIce(raw));
  const obj = raw as Record<string, Raw>;
  for (const k of Object.keys(obj)) {
    if (!['urls', 'username', 'credential'].includes(k)) {
      throw new Invalid(`has an unknown field "${k}" (allowed: urls, username, credential)`, redactIce(raw));
    }
  }
  const urlsRaw = obj.urls;
  let urls: string[];
  if (typeof urlsRaw === 'string') urls = [urlsRaw.trim()];
  else if (Array.isArray(urlsRaw) && urlsRaw.length > 0 && urlsRaw.every((u: Raw) => typeof u === 'string')) {
    urls = (urlsRaw as string[]).map((u) => u.trim());
  } else throw new Invalid('entries need "urls": a URL or a non-empty list of URLs', redactIce(raw));
  urls.forEach(iceUrl);
  const fields: { username?: string; credential?: string } = {};
  for (const f of ['username', 'credential'] as const) {
    const v = obj[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new Invalid(`entries' "${f}" must be a string`, redactIce(raw));
    fields[f] = v;
  }
  if (urls.some((u) => u.startsWith('turn')) && (!fields.username || !fields.credential)) {
    throw new Invalid('turn:/turns: entries need a username and a credential', redactIce(raw));
  }
  return {
    urls,
    ...(fields.username !== undefined && { username: fields.username }),
    ...(fields.credential !== undefined && { credential: new Secret(fields.credential) }),
  };
}

/**
 * ICE servers for WebRTC: a YAML list of `{urls, username?, credential?}`; from a flag or env
 * either the same as a JSON array, or a comma-separated list of stun: URLs.
 */
export function iceServers(raw: Raw): readonly IceServer[] {
  let value: Raw = raw;
  if (typeof raw === 'string') {
    const s = raw.trim();
    if (s === '') return [];
    if (s.startsWith('[') || s.startsWith('{')) {
      try {
        value = JSON.parse(s) as Raw;
      } catch {
        const got = /credential/i.test(s) ? '<hidden>' : s;
        throw new Invalid('is not valid JSON (expected [{"urls": "stun:host:port"}, ...])', got);
      }
      if (!Array.isArray(value)) value = [value];
    } else {
      value = s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
    }
  }
  if (!Array.isArray(value))
    throw new Invalid('must be a list of {urls, username?, credential?}', redactIce(value));
  return value.map(iceServer);
}
