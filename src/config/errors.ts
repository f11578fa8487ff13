import { HIDDEN } from './secret.ts';

const MAX_SHOWN = 200;

/**
 * Every problem with the configuration. `message` is always exactly one line:
 *
 *     config: <key>: <what is wrong>[, in <source>] (got <value as given>)
 *
 * `key` is the flag name (`httpAddr`, `liveMaxViewers`...), or `config` for a problem
 * with a config file itself, or `args` for a stray positional argument; for an unknown
 * YAML key it is the dotted YAML path. Secret values are shown as `<hidden>`.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The offending key (see above). */
  readonly key: string;
  /** Where the offending value came from: `flag -x`, `env LP_X`, a file path, or undefined for built-in defaults. */
  readonly source: string | undefined;

  constructor(key: string, problem: string, got: string, source?: string) {
    const where = source ? `, in ${oneLine(source)}` : '';
    super(`config: ${key}: ${oneLine(problem)}${where} (got ${oneLine(got)})`);
    this.key = key;
    this.source = source;
  }
}

/** Squash a string onto one line and cap its length, so it can be embedded in an error message. */
export function oneLine(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  const flat = s.replace(/\r\n|\r|\n/g, '\\n').replace(/[\u0000-\u001f\u007f]/g, (c) => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
  return flat.length > MAX_SHOWN ? `${flat.slice(0, MAX_SHOWN)}...` : flat;
}

/** How a raw value is shown after "got": strings verbatim, structures as JSON, secrets hidden. */
export function show(raw: unknown, secret = false): string {
  if (secret) return HIDDEN;
  if (raw === undefined || raw === null) return '<unset>';
  if (typeof raw === 'string') return raw === '' ? '<empty>' : raw;
  if (typeof raw === 'bigint' || typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  try {
    return JSON.stringify(raw, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return String(raw);
  }
}
