import { ConfigError } from './errors.ts';

export interface ParsedArgv {
  /** Flag name -> last value given (repeated flags: last wins, as with Go's flag package). */
  readonly values: ReadonlyMap<string, string>;
  /** True if -help / -h was given. Parsing stops there, as Go's flag package does. */
  readonly help: boolean;
}

export interface FlagLookup {
  /** 'value' for a flag that takes a value, 'bool' for a boolean flag, undefined if unknown. */
  kind(name: string): 'value' | 'bool' | undefined;
  /** A close known flag name for an unknown one, if any. */
  suggest(name: string): string | undefined;
  /** Whether the flag's value must never be shown. */
  secret(name: string): boolean;
}

const TRUE = ['1', 't', 'T', 'true', 'TRUE', 'True'];
const FALSE = ['0', 'f', 'F', 'false', 'FALSE', 'False'];

/**
 * Parses argv with the syntax of Go's `flag` package: `-name value`, `-name=value`,
 * `--name value`, `--name=value`; a boolean flag is `-flag` or `-flag=false` (not
 * `-flag false`). A non-boolean flag always consumes the next argument as its value,
 * even if it starts with `-`. `--` ends the flags. Unlike Go, positional arguments are
 * an error (a forgotten comma, `-orchAddr a:1 b:2`, would otherwise be silently dropped).
 */
export function parseArgv(argv: readonly string[], flags: FlagLookup): ParsedArgv {
  const values = new Map<string, string>();
  let i = 0;
  let afterSecret = false;
  while (i < argv.length) {
    const arg = argv[i++];
    if (arg === '--') break;
    if (arg.length < 2 || arg[0] !== '-') {
      i--;
      break;
    }
    const dashes = arg[1] === '-' ? 2 : 1;
    const body = arg.slice(dashes);
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === '' || name[0] === '-' || name[0] === '=') {
      throw new ConfigError('args', 'bad flag syntax', eq >= 0 ? arg.slice(0, dashes + eq + 1) : arg);
    }
    const written = arg.slice(0, dashes + name.length);
    const kind = flags.kind(name);
    afterSecret = kind === 'value' && flags.secret(name);
    if (kind === undefined) {
      const s = flags.suggest(name);
      throw new ConfigError(
        name,
        s ? `unknown flag; did you mean -${s}?` : 'unknown flag (see -help)',
        written,
      );
    }
    if (kind === 'bool') {
      let on = true;
      if (eq >= 0) {
        const v = body.slice(eq + 1);
        if (TRUE.includes(v)) on = true;
        else if (FALSE.includes(v)) on = false;
        else throw new ConfigError(name, 'must be true or false', v, `flag ${written}`);
      }
      if (name === 'help' || name === 'h') {
        if (on) return { values, help: true };
        continue;
      }
      values.set(name, String(on));
      continue;
    }
    if (eq >= 0) {
      values.set(name, body.slice(eq + 1));
    } else if (i < argv.length) {
      values.set(name, argv[i++]);
    } else {
      throw new ConfigError(name, `needs a value (${written} value or ${written}=value)`, written);
    }
  }
  if (i < argv.length) {
    throw new ConfigError(
      'args',
      'unexpected argument; flags are -name value, lists are comma-separated without spaces',
      afterSecret ? '<hidden>' : argv[i],
    );
  }
  return { values, help: false };
}
