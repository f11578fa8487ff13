// Fault injection for the local orchestrator (localOrchestrator.fault): FOR TESTS AND DEMOS ONLY.
// It makes the local orchestrator fail the way real ones do, so gateway failover can be exercised.
import { duration, Invalid, type Raw, scalar } from './parse.ts';

/** Faults that take effect some time after a job (or, for exit-after, the first job) started. */
export const TIMED_FAULTS = ['stall-output-after', 'exit-after', 'events-error-after', 'warmup'] as const;
export type TimedFaultKind = (typeof TIMED_FAULTS)[number];

/**
 * - `none`: behave normally (the default).
 * - `fail-start`: `POST /live-video-to-video`, the batch AI routes (`/text-to-image`, ...) and
 *   `/segment` answer 500 with a plain-text reason, after the normal checks (model, capacity,
 *   credentials, payment): a runner or transcoder that failed to start.
 * - `hang`: the batch AI routes and `/segment` accept a request (every check passes) and never
 *   answer; the slot stays taken until the client gives up: a hung runner, for gateway time budgets.
 * - `stall-output-after:<duration>`: after that long since the job started, no more output segments
 *   and no status events; sockets and channels stay open and input is still read: a hung model.
 * - `exit-after:<duration>`: that long after the first job started, the orchestrator dies: the
 *   process exits with status 1 when run on its own, an embedded one drops every socket.
 * - `events-error-after:<duration>`: after that long since the job started, an
 *   `{"type":"error","message":...}` event, then no more output: a runner reporting a fatal error.
 * - `warmup:<duration>`: for that long after each job starts, status events say `LOADING` and
 *   no output comes (input is read and dropped), then the job runs normally: a model loading,
 *   as an ai-runner pipeline does for seconds. Not a failure: the gateway must wait for it.
 */
export type OrchestratorFault =
  | { readonly kind: 'none' }
  | { readonly kind: 'fail-start' }
  | { readonly kind: 'hang' }
  | { readonly kind: TimedFaultKind; readonly afterMs: number };

export const NO_FAULT: OrchestratorFault = Object.freeze({ kind: 'none' });

const SYNTAX = `none, fail-start, hang, ${TIMED_FAULTS.map((k) => `${k}:<duration>`).join(', ')}`;
const afterDuration = duration({ min: 0 });

/** Parses `none`, `fail-start`, `hang` or `<timed fault>:<duration>`; empty means none. Throws Invalid. */
export function orchestratorFault(raw: Raw): OrchestratorFault {
  const s = scalar(raw);
  if (s === '' || s === 'none') return NO_FAULT;
  if (s === 'fail-start') return { kind: 'fail-start' };
  if (s === 'hang') return { kind: 'hang' };
  const i = s.indexOf(':');
  const kind = i < 0 ? s : s.slice(0, i);
  if (!(TIMED_FAULTS as readonly string[]).includes(kind)) throw new Invalid(`must be one of ${SYNTAX}`);
  if (i < 0) throw new Invalid(`needs a duration, as in ${kind}:3s`);
  try {
    return { kind: kind as TimedFaultKind, afterMs: afterDuration(s.slice(i + 1), { cwd: '.' }) };
  } catch (err) {
    if (err instanceof Invalid) throw new Invalid(`has a bad duration after "${kind}:": it ${err.message}`);
    throw err;
  }
}

/** The fault as written in config: `none`, `fail-start`, `stall-output-after:3000ms`. */
export function formatFault(fault: OrchestratorFault): string {
  return 'afterMs' in fault ? `${fault.kind}:${fault.afterMs}ms` : fault.kind;
}
