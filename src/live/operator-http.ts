// Small pieces shared by the gateway's calls to its operator's services (auth webhook,
// heartbeat, events webhook): bounded answers, one-line reasons.
export { readCapped } from '../http/capped-body.ts';

/**
 * Text from an outside service made fit for a client or a log line: control and non-ASCII
 * characters become spaces, whitespace runs one space, at most `max` characters.
 */
export function sanitizeReason(text: string, max = 200): string {
  const clean = text
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** The reason a refusal's body gives: a JSON `error`/`message`/`reason` (or `error.message`), else its text. */
export function reasonOf(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const json: unknown = JSON.parse(text);
    if (json && typeof json === 'object' && !Array.isArray(json)) {
      const o = json as Record<string, unknown>;
      const error = o.error;
      for (const v of [
        error && typeof error === 'object' ? (error as Record<string, unknown>).message : error,
        o.message,
        o.reason,
      ]) {
        if (typeof v === 'string' && v.trim()) return sanitizeReason(v);
      }
    }
  } catch {
    // not JSON: the text itself
  }
  return sanitizeReason(text);
}

/** Why a fetch failed, in a few words (timeouts named as such); no library text beyond its code. */
export function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const code = e?.cause?.code;
  return code ? `unreachable (${code})` : 'unreachable';
}

/** Nesting depth of a JSON value (1 for a scalar), stopping once past `limit`. */
export function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 1 }];
  while (stack.length) {
    const { v, d } = stack.pop() as { v: unknown; d: number };
    if (d > max) max = d;
    if (max > limit) return max;
    if (v && typeof v === 'object') {
      for (const child of Object.values(v as object)) stack.push({ v: child, d: d + 1 });
    }
  }
  return max;
}
