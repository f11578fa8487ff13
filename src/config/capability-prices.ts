// -maxPricePerCapability: go-livepeer's JSON format, parsed and checked at start-up.
//
// go-livepeer (cmd/livepeer/starter/starter.go getCapabilityPrices, flags.go) takes either the
// JSON itself or the path of a file holding it:
//
//   {"capabilities_prices": [
//     {"pipeline": "live-video-to-video", "model_id": "streamdiffusion", "price_per_unit": 1000,
//      "pixels_per_unit": 1, "currency": "WEI"},
//     {"pipeline": "live-video-to-video", "model_id": "default", "price_per_unit": 800}
//   ]}
//
// - `pipeline` names a capability (`live-video-to-video` is 35); `model_id` "" or absent means
//   "default": every model of that pipeline without its own entry.
// - `price_per_unit` / `pixels_per_unit` are JSON numbers read exactly as rationals (Go's
//   big.Rat.SetString), so `0.5` and `1e3` are fine. An absent or 0 `price_per_unit` means
//   -maxPricePerUnit (or no limit when that is 0 too); an absent or 0 `pixels_per_unit` means
//   -pixelsPerUnit.
// - `currency`: "" / WEI, or ETH (× 10^18), case-insensitive. Other currencies (USD...) need an
//   on-chain price feed, which this gateway does not have: refused here.
//
// Stricter than go-livepeer, which logs a bad file and then runs with no per-capability limits:
// any problem here stops start-up with a one-line error.
import { Invalid } from './parse.ts';

/** An exact non-negative rational; `den` > 0. Prices are wei per pixel, or wei per unit. */
export interface Ratio {
  readonly num: bigint;
  readonly den: bigint;
}

export interface CapabilityMaxPrice {
  /** As written, e.g. `live-video-to-video`. */
  readonly pipeline: string;
  /** go-livepeer's capability id for the pipeline (35 for live-video-to-video). */
  readonly capability: number;
  /** `default` when absent or empty: every model of the pipeline without its own entry. */
  readonly modelId: string;
  /** Wei (ETH converted) per pixelsPerUnit; undefined when absent or 0 (-maxPricePerUnit applies). */
  readonly pricePerUnit: Ratio | undefined;
  /** Undefined when absent or 0 (-pixelsPerUnit applies). */
  readonly pixelsPerUnit: Ratio | undefined;
  readonly currency: 'WEI' | 'ETH';
}

export interface CapabilityPrices {
  /** Absolute path of the file, or `inline JSON`. */
  readonly source: string;
  readonly entries: readonly CapabilityMaxPrice[];
}

/**
 * go-livepeer's pipeline names and capability ids (core/capabilities.go; PipelineToCapability
 * upper-cases the first letter and turns `-` into spaces to find the name).
 */
export const PIPELINE_CAPABILITIES: Readonly<Record<string, number>> = {
  'text-to-image': 27,
  'image-to-image': 28,
  'image-to-video': 29,
  upscale: 30,
  'audio-to-text': 31,
  'segment-anything-2': 32,
  llm: 33,
  'image-to-text': 34,
  'live-video-to-video': 35,
  'text-to-speech': 36,
};

const ENTRY_FIELDS = ['pipeline', 'model_id', 'price_per_unit', 'pixels_per_unit', 'currency'];
const WEI_PER_ETH = 10n ** 18n;
const MAX_EXPONENT = 60;

/** A JSON number kept as written, so that big integers and decimals stay exact. */
class JsonNumber {
  constructor(readonly text: string) {}
}
type Json = null | boolean | string | JsonNumber | Json[] | { [k: string]: Json };

/**
 * Parses the JSON text of -maxPricePerCapability.
 * @throws Invalid with a one-line reason naming the entry and field.
 */
export function parseCapabilityPrices(text: string): CapabilityMaxPrice[] {
  const doc = parseJson(text);
  if (!isObject(doc)) throw new Invalid('must be a JSON object {"capabilities_prices": [...]}');
  // Go's encoding/json matches field names case-insensitively.
  const listKey = Object.keys(doc).find((k) => k.toLowerCase() === 'capabilities_prices');
  if (listKey === undefined) return [];
  const list = doc[listKey];
  if (list === null) return [];
  if (!Array.isArray(list)) throw new Invalid('"capabilities_prices" must be a JSON array');
  return list.map((entry, i) => parseEntry(entry, `capabilities_prices[${i}]`));
}

function parseEntry(raw: Json, at: string): CapabilityMaxPrice {
  if (!isObject(raw)) throw new Invalid(`${at} must be an object`);
  const fields: Record<string, Json> = {};
  for (const [k, v] of Object.entries(raw)) {
    const name = ENTRY_FIELDS.find((f) => f === k.toLowerCase());
    if (!name) throw new Invalid(`${at} has an unknown field "${k}" (known: ${ENTRY_FIELDS.join(', ')})`);
    fields[name] = v;
  }
  const str = (name: string): string => {
    const v = fields[name];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new Invalid(`${at}.${name} must be a string`);
    return v.trim();
  };
  const pipeline = str('pipeline');
  if (pipeline === '') throw new Invalid(`${at}.pipeline is missing`);
  const capability = PIPELINE_CAPABILITIES[pipeline];
  if (capability === undefined) {
    throw new Invalid(
      `${at}.pipeline "${pipeline}" is not a pipeline (known: ${Object.keys(PIPELINE_CAPABILITIES).join(', ')})`,
    );
  }
  const modelId = str('model_id') || 'default';
  const currencyText = str('currency').toUpperCase();
  let currency: 'WEI' | 'ETH';
  if (currencyText === '' || currencyText === 'WEI') currency = 'WEI';
  else if (currencyText === 'ETH') currency = 'ETH';
  else {
    throw new Invalid(
      `${at}.currency ${currencyText} needs an on-chain price feed, which this gateway does not have; use WEI or ETH`,
    );
  }
  const number = (name: string): Ratio | undefined => {
    const v = fields[name];
    if (v === undefined || v === null) return undefined;
    if (!(v instanceof JsonNumber)) throw new Invalid(`${at}.${name} must be a JSON number`);
    let r: Ratio;
    try {
      r = parseDecimal(v.text);
    } catch (err) {
      throw new Invalid(`${at}.${name} ${(err as Error).message}`);
    }
    if (r.num < 0n) throw new Invalid(`${at}.${name} must not be negative`);
    return r.num === 0n ? undefined : r;
  };
  const price = number('price_per_unit');
  return {
    pipeline,
    capability,
    modelId,
    pricePerUnit: price && currency === 'ETH' ? reduce(price.num * WEI_PER_ETH, price.den) : price,
    pixelsPerUnit: number('pixels_per_unit'),
    currency,
  };
}

/** A JSON number's text as an exact reduced rational. */
export function parseDecimal(text: string): Ratio {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) throw new Error('is not a number');
  const [, sign, int, frac = '', expText = '0'] = m;
  const exp = Number(expText) - frac.length;
  if (Math.abs(Number(expText)) > MAX_EXPONENT) throw new Error(`has an exponent beyond ±${MAX_EXPONENT}`);
  let num = BigInt(int + frac) * (sign ? -1n : 1n);
  let den = 1n;
  if (exp >= 0) num *= 10n ** BigInt(exp);
  else den = 10n ** BigInt(-exp);
  return reduce(num, den);
}

function reduce(num: bigint, den: bigint): Ratio {
  let a = num < 0n ? -num : num;
  let b = den;
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? { num: 0n, den: 1n } : { num: num / a, den: den / a };
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/** RFC 8259 JSON, numbers kept as text. Errors name the position. */
function parseJson(text: string): Json {
  let i = 0;
  const fail = (what: string): never => {
    throw new Invalid(`is not valid JSON: ${what} at position ${i}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const value = (depth: number): Json => {
    if (depth > 64) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [k: string]: Json } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const key = string();
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const arr: Json[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    m.lastIndex = i;
    const found = m.exec(text);
    if (!found || found[0] === '') return fail(i >= text.length ? 'unexpected end' : 'unexpected character');
    i += found[0].length;
    return new JsonNumber(found[0]);
  };
  const string = (): string => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: JSON strings may not hold raw control characters
    const m = /"((?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*)"/y;
    m.lastIndex = i;
    const found = m.exec(text);
    if (!found) return fail('bad string');
    i += found[0].length;
    return JSON.parse(found[0]) as string;
  };
  const v = value(0);
  ws();
  if (i < text.length) fail('unexpected text after the value');
  return v;
}
