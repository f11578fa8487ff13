import { describe, expect, it } from 'vitest';
import {
  add,
  ceil,
  ceilDiv,
  compare,
  div,
  floatString,
  floor,
  mul,
  parseRat,
  rat,
  ratString,
  sub,
} from '../../src/payments/rational.ts';

describe('rational', () => {
  it('reduces and normalises the sign', () => {
    expect(rat(2400n, 2n)).toEqual({ num: 1200n, den: 1n });
    expect(rat(3n, -6n)).toEqual({ num: -1n, den: 2n });
    expect(rat(0n, -5n)).toEqual({ num: 0n, den: 1n });
    expect(() => rat(1n, 0n)).toThrow(/zero denominator/);
  });

  it('does exact arithmetic', () => {
    expect(add(rat(1n, 3n), rat(1n, 6n))).toEqual(rat(1n, 2n));
    expect(sub(rat(1n, 4n), rat(2n))).toEqual(rat(-7n, 4n));
    expect(mul(rat(2n, 3n), rat(9n, 4n))).toEqual(rat(3n, 2n));
    expect(div(rat(1n, 2n), rat(-1n, 4n))).toEqual(rat(-2n));
    expect(() => div(rat(1n), rat(0n))).toThrow(/division by zero/);
    expect(compare(rat(1n, 3n), rat(333n, 1000n))).toBe(1);
    expect(compare(rat(-1n, 3n), rat(-1n, 3n))).toBe(0);
  });

  it('rounds up and down exactly', () => {
    expect(ceil(rat(7n, 2n))).toBe(4n);
    expect(ceil(rat(-7n, 2n))).toBe(-3n);
    expect(floor(rat(-7n, 2n))).toBe(-4n);
    expect(ceil(rat(4n))).toBe(4n);
    expect(ceilDiv(rat(15n), rat(5n))).toBe(3n);
    expect(ceilDiv(rat(15n), rat(499n, 100n))).toBe(4n);
  });

  it("formats like Go's FloatString (halves away from zero)", () => {
    expect(floatString(rat(1n, 2n))).toBe('1');
    expect(floatString(rat(-1n, 2n))).toBe('-1');
    expect(floatString(rat(49n, 100n))).toBe('0');
    expect(floatString(rat(-1n, 10n))).toBe('-0');
    expect(floatString(rat(2n, 3n), 5)).toBe('0.66667');
    expect(floatString(rat(100n), 5)).toBe('100.00000');
    expect(floatString(rat(19999n, 20000n), 3)).toBe('1.000');
    expect(ratString(rat(6n, 4n))).toBe('3/2');
    expect(parseRat('2400/2')).toEqual(rat(1200n));
    expect(parseRat('-5')).toEqual(rat(-5n));
  });
});
