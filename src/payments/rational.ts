// Exact rationals over bigint, the TypeScript stand-in for Go's big.Rat. Money (EV, fees,
// balances) is always one of these: never a float.

/** A reduced fraction: gcd(num, den) = 1 and den > 0. Zero is 0/1. */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

const abs = (v: bigint): bigint => (v < 0n ? -v : v);

export function gcd(a: bigint, b: bigint): bigint {
  let x = abs(a);
  let y = abs(b);
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** num/den, reduced; throws on a zero denominator. */
export function rat(num: bigint, den = 1n): Rational {
  if (den === 0n) throw new RangeError('rational: zero denominator');
  if (num === 0n) return ZERO;
  const sign = den < 0n ? -1n : 1n;
  const g = gcd(num, den);
  return { num: (sign * num) / g, den: (sign * den) / g };
}

export const ZERO: Rational = Object.freeze({ num: 0n, den: 1n });
export const ONE: Rational = Object.freeze({ num: 1n, den: 1n });

export const add = (a: Rational, b: Rational): Rational => rat(a.num * b.den + b.num * a.den, a.den * b.den);
export const sub = (a: Rational, b: Rational): Rational => rat(a.num * b.den - b.num * a.den, a.den * b.den);
export const mul = (a: Rational, b: Rational): Rational => rat(a.num * b.num, a.den * b.den);
export function div(a: Rational, b: Rational): Rational {
  if (b.num === 0n) throw new RangeError('rational: division by zero');
  return rat(a.num * b.den, a.den * b.num);
}
export const neg = (a: Rational): Rational => rat(-a.num, a.den);

/** -1, 0 or 1 as a < b, a = b, a > b. */
export function compare(a: Rational, b: Rational): -1 | 0 | 1 {
  const l = a.num * b.den;
  const r = b.num * a.den;
  return l < r ? -1 : l > r ? 1 : 0;
}
export const sign = (a: Rational): -1 | 0 | 1 => (a.num < 0n ? -1 : a.num > 0n ? 1 : 0);
export const isZero = (a: Rational): boolean => a.num === 0n;
export const isInt = (a: Rational): boolean => a.den === 1n;
export const eq = (a: Rational, b: Rational): boolean => a.num === b.num && a.den === b.den;
export const max = (a: Rational, b: Rational): Rational => (compare(a, b) >= 0 ? a : b);
export const min = (a: Rational, b: Rational): Rational => (compare(a, b) <= 0 ? a : b);

/** ceil(a / b) for integers, b > 0 (any sign of a). */
export function ceilDivInt(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new RangeError('ceilDiv: divisor must be positive');
  const q = a / b; // truncates toward zero
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** floor(a / b) for integers, b > 0. */
export function floorDivInt(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new RangeError('floorDiv: divisor must be positive');
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/** The smallest integer ≥ r. */
export const ceil = (r: Rational): bigint => ceilDivInt(r.num, r.den);
/** The largest integer ≤ r. */
export const floor = (r: Rational): bigint => floorDivInt(r.num, r.den);

/** ceil(a / b) for rationals (b ≠ 0): e.g. the number of tickets of EV b that cover a. */
export const ceilDiv = (a: Rational, b: Rational): bigint => ceil(div(a, b));

/**
 * Go's big.Rat.FloatString(prec): decimal with prec digits after the point, the last one rounded
 * to nearest with halves away from zero. Like Go, a negative value that rounds to zero keeps its
 * sign ("-0").
 */
export function floatString(r: Rational, prec = 0): string {
  if (prec < 0 || !Number.isInteger(prec)) throw new RangeError('floatString: bad precision');
  if (r.den === 1n) return prec > 0 ? `${r.num}.${'0'.repeat(prec)}` : `${r.num}`;
  const a = abs(r.num);
  let q = a / r.den;
  const p = 10n ** BigInt(prec);
  let frac = ((a % r.den) * p) / r.den;
  const rem = ((a % r.den) * p) % r.den;
  if (r.den <= rem * 2n) {
    frac += 1n;
    if (frac >= p) {
      q += 1n;
      frac -= p;
    }
  }
  const head = `${r.num < 0n ? '-' : ''}${q}`;
  return prec > 0 ? `${head}.${frac.toString().padStart(prec, '0')}` : head;
}

/** Go's big.Rat.String(): "num/den", always with the denominator. */
export const ratString = (r: Rational): string => `${r.num}/${r.den}`;

/** Parses "a", "-a" or "a/b" (integers only). */
export function parseRat(text: string): Rational {
  const m = /^\s*(-?\d+)\s*(?:\/\s*(\d+)\s*)?$/.exec(text);
  if (!m) throw new SyntaxError(`rational: cannot parse "${text}"`);
  return rat(BigInt(m[1]!), BigInt(m[2] ?? '1'));
}
