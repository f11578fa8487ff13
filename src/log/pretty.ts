// Log lines for a person at a terminal: one line per event, `time LEVEL msg key=value…`, from
// pino's JSON (so what is logged is the same in both formats). pino-pretty would do it with many
// more dependencies.
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** One JSON log line → one readable line (newline included); a line that is not JSON is kept. */
export function prettyLine(json: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const shownLevel = color ? `\x1b[${COLORS[level] ?? '0'}m${name}\x1b[0m` : name;
  const fields: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP.has(k) || v === undefined) continue;
    fields.push(`${k}=${fieldValue(v)}`);
  }
  const msg = typeof rec.msg === 'string' ? rec.msg.replace(/\n/g, '\\n') : '';
  return `${[time, shownLevel, msg, ...fields].filter(Boolean).join(' ')}\n`;
}

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * The process's logger: JSON lines, or pretty ones (`auto`: when stdout is a terminal).
 * `out` is for tests.
 */
export function createLogger(
  options: LoggerOptions,
  format: 'auto' | 'json' | 'pretty',
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  if (!pretty) return out === process.stdout ? pino(options) : pino(options, out as DestinationStream);
  const color = out.isTTY === true && !process.env.NO_COLOR;
  const dest: DestinationStream = { write: (line: string) => void out.write(prettyLine(line, color)) };
  return pino(options, dest);
}
