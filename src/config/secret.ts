const HIDDEN = '<hidden>';

/**
 * A secret config value (password, shared secret, bearer token, TURN credential).
 *
 * The value lives in a private class field, so it is invisible to `JSON.stringify`
 * (which prints `"<hidden>"` via `toJSON`), to `util.inspect`/`console.log`
 * (which print `<hidden>`), to string concatenation and template literals, and to
 * `Object.keys`/spread. Read it deliberately with `reveal()`.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    Object.freeze(this);
  }

  /** The secret itself. Never log the result. */
  reveal(): string {
    return this.#value;
  }

  /** Constant-time comparison with a candidate (e.g. a bearer token from a request). */
  equals(candidate: string): boolean {
    const a = Buffer.from(this.#value, 'utf8');
    const b = Buffer.from(candidate, 'utf8');
    let diff = a.length ^ b.length;
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
    return diff === 0;
  }

  toString(): string {
    return HIDDEN;
  }

  toJSON(): string {
    return HIDDEN;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return HIDDEN;
  }

  [Symbol.toPrimitive](): string {
    return HIDDEN;
  }
}

export { HIDDEN };
