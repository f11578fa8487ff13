// Fault injection for the local orchestrator (localOrchestrator.fault): FOR TESTS AND DEMOS ONLY.
// It makes the local orchestrator fail the way real ones do, so gateway failover can be exercised.
import { duration, Invalid, type Raw, scalar } from './parse.ts';

/** Faults that take effect some time after a job (or, for exit-after, the first job) started. */
export const TIMED_FAULTS = ['stall-output-after', 'exit-after', 'events-error-after'] as const;
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

// ---------------------------------------------------------------------------------------------
// ai-runner-like behaviour (localOrchestrator.warmup, outputSize, outputFps, restarts, restartGap,
// eventForm): FOR TESTS AND DEMOS. The local orchestrator answers at once and never restarts;
// real live pipelines (livepeer/ai-runner) load for seconds, change the picture's size and rate,
// restart now and then, and wrap their events. docs/local-orchestrator.md has the facts.

/** `none`, `after:<duration>` (one restart that long after the job started) or `every:<duration>`. */
export type PipelineRestarts =
  | { readonly kind: 'none' }
  | { readonly kind: 'after' | 'every'; readonly ms: number };

export const NO_RESTARTS: PipelineRestarts = Object.freeze({ kind: 'none' });

const restartDuration = duration({ min: 1 });

/** Parses `none`, `after:<duration>` or `every:<duration>`; empty means none. Throws Invalid. */
export function pipelineRestarts(raw: Raw): PipelineRestarts {
  const s = scalar(raw);
  if (s === '' || s === 'none') return NO_RESTARTS;
  const m = /^(after|every):(.*)$/.exec(s);
  if (!m) throw new Invalid('must be none, after:<duration> or every:<duration>, as in every:30s');
  try {
    return { kind: m[1] as 'after' | 'every', ms: restartDuration(m[2]!, { cwd: '.' }) };
  } catch (err) {
    if (err instanceof Invalid) throw new Invalid(`has a bad duration after "${m[1]}:": it ${err.message}`);
    throw err;
  }
}

export function formatRestarts(r: PipelineRestarts): string {
  return r.kind === 'none' ? 'none' : `${r.kind}:${r.ms}ms`;
}

export interface FrameSize {
  readonly width: number;
  readonly height: number;
}

/** `WxH` (even numbers, 16..4096, as H.264 4:2:0 needs), e.g. 512x512; empty: not set. Throws Invalid. */
export function frameSize(raw: Raw): FrameSize | undefined {
  const s = scalar(raw);
  if (s === '') return undefined;
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(s);
  if (!m) throw new Invalid('must be WIDTHxHEIGHT, as in 512x512');
  const [width, height] = [Number(m[1]), Number(m[2])];
  for (const n of [width, height]) {
    if (n < 16 || n > 4096 || n % 2 !== 0) throw new Invalid('needs even sides from 16 to 4096 pixels');
  }
  return { width, height };
}

/** How the local orchestrator's live jobs behave beyond applying the effect. */
export interface RunnerBehaviour {
  /** LOADING on the events channel and no output for this long after a job starts (ms; 0: none). */
  readonly warmupMs: number;
  /** The output picture's size (scaled to cover, then centre-cropped); undefined: the input's. */
  readonly outputSize: FrameSize | undefined;
  /** The output frame rate; undefined: the input's. */
  readonly outputFps: number | undefined;
  readonly restarts: PipelineRestarts;
  /** How long output stops at each restart (ms). */
  readonly restartGapMs: number;
  /** `plain` events (`{"type": ...}`) or ai-runner's `envelope` (`{"event": {...}, "queue_event_type": ...}`). */
  readonly eventForm: 'plain' | 'envelope';
}

export const PLAIN_RUNNER: RunnerBehaviour = Object.freeze({
  warmupMs: 0,
  outputSize: undefined,
  outputFps: undefined,
  restarts: NO_RESTARTS,
  restartGapMs: 3000,
  eventForm: 'plain',
});
