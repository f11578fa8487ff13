// The failover policy of one live stream, as a pure function: (state, event, now) → (state,
// commands). No timers, sockets or clocks here: LiveSession feeds events (and a tick from its one
// timer) with the time, and carries out the commands. Every rule is in this file; the facts behind
// the numbers are in docs/live-liveness.md.
import { type Blame, countsAgainstOrchestrator, type Failure } from './cause.ts';

export interface PolicyLimits {
  /** End the stream when no media arrives from the publisher for this long. */
  ingestTimeoutMs: number;
  /** A job that has been given input but sent no output this long is replaced (extended while it reports LOADING). */
  firstOutputTimeoutMs: number;
  /** A job that was sending output and stopped for this long while input flows is replaced. */
  noOutputTimeoutMs: number;
  /** At most this many swaps within swapWindowMs; then the stream stays where it is, or ends if it has no job. */
  maxSwaps: number;
  swapWindowMs: number;
  /** With no job running, keep the publisher this long while retrying, then end. */
  noOrchestratorGraceMs: number;
  /** An event-loop delay at least this long means the gateway itself is starved: no blame. */
  starvedLoopDelayMs: number;
  /** How long an orchestrator may report LOADING before its job counts as failed. */
  maxLoadingMs: number;
}

/** Defaults that fit real orchestrators; docs/live-liveness.md says where each comes from. */
export const POLICY_DEFAULTS: PolicyLimits = {
  ingestTimeoutMs: 10_000,
  firstOutputTimeoutMs: 30_000,
  noOutputTimeoutMs: 10_000,
  maxSwaps: 2,
  swapWindowMs: 180_000,
  noOrchestratorGraceMs: 30_000,
  starvedLoopDelayMs: 250,
  maxLoadingMs: 180_000,
};

/** Input counts as flowing when a frame went to the job this recently. */
export const INPUT_GAP_MS = 2000;
/** A reported pipeline state older than this is not trusted (go-livepeer's maxEventGap). */
export const STATUS_FRESH_MS = 30_000;
/** An error event this soon after the client changed params is blamed on the params. */
export const PARAMS_ERROR_WINDOW_MS = 5000;
/** With no orchestrator available, try again this often. */
export const NO_ORCHESTRATOR_RETRY_MS = 1000;

/** `loading`: a job runs but no output yet (warm-up, or a pipeline reloading). */
export type StreamState = 'starting' | 'loading' | 'live' | 'degraded' | 'ended';

export type PolicyEvent =
  /** The WHIP offer is accepted: find an orchestrator. */
  | { type: 'start' }
  | { type: 'publisherConnected' }
  /** DELETE, shutdown, or the publisher's peer gone. */
  | { type: 'stop'; reason: string }
  | { type: 'jobStarted'; jobId: number; url: string }
  /** This orchestrator could not start the job; others may. */
  | { type: 'jobStartFailed'; jobId: number; url: string; failure: Failure }
  /** Selection found no orchestrator (with the command's exclusions). */
  | { type: 'noOrchestrator'; jobId: number; failure: Failure }
  /** The running job broke: its channels closed, failed or were refused. */
  | { type: 'jobFailed'; jobId: number; failure: Failure }
  /** A frame was written to the current job. */
  | { type: 'inputSeen' }
  /** A processed frame came back from the current job. */
  | { type: 'outputSeen'; jobId: number }
  /** A status (or restart) event: the pipeline's state as the orchestrator reports it. */
  | { type: 'orchestratorStatus'; jobId: number; state?: string; restarts?: number }
  /** An error event: recorded, never acted on by itself (real failures show up as no output). */
  | { type: 'orchestratorError'; jobId: number; message: string }
  | { type: 'paramsUpdated' }
  | { type: 'paymentFailed'; jobId: number; failure: Failure }
  /** The gateway's own event-loop delay over the last interval. */
  | { type: 'loopDelay'; ms: number }
  /** From the session's timer; `lastPacketAt`: the publisher's last RTP packet of any kind. */
  | { type: 'tick'; lastPacketAt?: number };

export type PolicyCommand =
  /**
   * Start a job: on `target` only (a retry on the same orchestrator), else on one selected
   * without `exclude`. A job on an orchestrator in `prepaid` starts without a new 60 s
   * prepayment. When it starts it replaces the current job, if any.
   */
  | { type: 'startJob'; jobId: number; target?: string; exclude: string[]; prepaid: string[] }
  | { type: 'closeJob'; jobId: number; reason: string }
  | { type: 'requestKeyframe' }
  /** Give the publisher's input to this job now: the cached GOP first (else a keyframe request). */
  | { type: 'attachInput'; jobId: number }
  /** Tell the pool: selection avoids this orchestrator for a while (every stream). */
  | { type: 'suspend'; url: string; failure: Failure }
  | { type: 'setState'; state: StreamState; reason: string | null }
  /**
   * A job was replaced (or lost): for logs, metrics and events. `to` is null until a new one
   * starts; `update` marks the same record again once it has (not a new swap).
   */
  | { type: 'swap'; record: SwapRecord; update?: true }
  | { type: 'endStream'; reason: string; failure?: Failure };

export interface SwapRecord {
  at: number;
  from: string;
  to: string | null;
  reason: string;
  blame: Blame;
  code: Failure['code'];
  /** From the failure being noticed to the new job running. */
  tookMs: number | null;
}

export interface JobState {
  id: number;
  url: string;
  startedAt: number;
  firstInputAt?: number;
  firstOutputAt?: number;
  lastOutputAt?: number;
  /** Output is awaited like a first output again from here: params changed, or the pipeline restarted. */
  expectOutputFrom?: number;
  reported?: { state?: string; restarts?: number; at: number };
  loadingSince?: number;
  /** Alive but failing: a replacement is under way, or none could be found (then retried at retryAt). */
  trouble?: { failure: Failure; at: number; retryAt: number; why?: string };
  /** Suspended once for this job, not again at every retry. */
  suspended: boolean;
}

export interface PolicyState {
  readonly limits: PolicyLimits;
  state: StreamState;
  reason: string | null;
  startedAt: number;
  publisherConnected: boolean;
  /** A job has run for this stream at some point (before that, no orchestrator ends the start). */
  hadJob: boolean;
  lastInputAt?: number;
  /** Input came back after a gap: no output is owed for frames that were never sent. */
  inputResumedAt?: number;
  lastPacketAt?: number;
  nextJobId: number;
  job?: JobState;
  pending?: { jobId: number; since: number; target?: string; exclude: string[]; replaces?: number };
  /** Start failures of the pending chain, for the reason the stream could not start. */
  startFailures: string[];
  swaps: SwapRecord[];
  /** With no job: since when, why, and when to try again. */
  noJob?: {
    since: number;
    why: string;
    retryAt: number;
    /** The orchestrator whose job died: others are tried first, then it once more. */
    deadUrl?: string;
    excludeNext: string[];
    retriedSame: boolean;
  };
  /** The last time the gateway's event loop was starved, and by how much. */
  starved?: { at: number; ms: number };
  /** A stall forgiven because the gateway was starved. */
  overloaded?: { ms: number };
  /** Our own payment account failed (not the orchestrator's fault). */
  accountTrouble?: Failure;
  paramsAt?: number;
  /** Orchestrators this stream has prepaid (a retry there does not prepay 60 s again). */
  prepaid: string[];
  lastFailure?: Failure & { at: number };
  endReason?: string;
}

export function initialState(limits: PolicyLimits, now: number): PolicyState {
  return {
    limits,
    state: 'starting',
    reason: null,
    startedAt: now,
    publisherConnected: false,
    hadJob: false,
    nextJobId: 1,
    startFailures: [],
    swaps: [],
    prepaid: [],
  };
}

/** Swaps counted against the budget at `now`. */
export function swapsInWindow(s: PolicyState, now: number): number {
  return s.swaps.filter((r) => now - r.at < s.limits.swapWindowMs).length;
}

/** The policy: the next state and what to do. `s` is not modified. */
export function step(
  s: PolicyState,
  event: PolicyEvent,
  now: number,
): { state: PolicyState; commands: PolicyCommand[] } {
  const d = clone(s);
  const out: PolicyCommand[] = [];
  if (d.state === 'ended') {
    // A start that was under way when the stream ended: let it go.
    if (event.type === 'jobStarted')
      out.push({ type: 'closeJob', jobId: event.jobId, reason: 'stream ended' });
    return { state: d, commands: out };
  }
  apply(d, event, now, out);
  publishState(d, now, out);
  return { state: d, commands: out };
}

function apply(d: PolicyState, e: PolicyEvent, now: number, out: PolicyCommand[]): void {
  const job = 'jobId' in e && d.job?.id === e.jobId ? d.job : undefined;
  switch (e.type) {
    case 'start':
      startJob(d, now, out, { exclude: [] });
      return;
    case 'publisherConnected':
      d.publisherConnected = true;
      out.push({ type: 'requestKeyframe' });
      return;
    case 'stop':
      end(d, out, e.reason);
      return;
    case 'inputSeen':
      if (d.lastInputAt === undefined || now - d.lastInputAt > INPUT_GAP_MS) d.inputResumedAt = now;
      d.lastInputAt = now;
      if (d.job) d.job.firstInputAt ??= now;
      return;
    case 'outputSeen':
      if (!job) return;
      job.firstOutputAt ??= now;
      job.lastOutputAt = now;
      job.expectOutputFrom = undefined;
      d.overloaded = undefined;
      // A stalled job that came back is fine again (a replacement already under way still goes ahead).
      if (job.trouble && !d.pending && LIVENESS_CODES.has(job.trouble.failure.code)) job.trouble = undefined;
      return;
    case 'jobStarted':
      onJobStarted(d, e.jobId, e.url, now, out);
      return;
    case 'jobStartFailed':
      onStartFailed(d, e.jobId, e.url, e.failure, now, out);
      return;
    case 'noOrchestrator':
      if (d.pending?.jobId === e.jobId) onNoOrchestrator(d, e.failure, now, out);
      return;
    case 'jobFailed':
      if (job) onJobDead(d, job, e.failure, now, out);
      return;
    case 'orchestratorStatus':
      if (job) onStatus(d, job, e.state, e.restarts, now, out);
      return;
    case 'orchestratorError':
      if (job) {
        const client = d.paramsAt !== undefined && now - d.paramsAt < PARAMS_ERROR_WINDOW_MS;
        note(d, now, {
          blame: client ? 'client' : 'orchestrator',
          code: client ? 'params-rejected' : 'reported-error',
          message: client
            ? `the orchestrator reported an error right after a params update: ${e.message}`
            : `the orchestrator reported: ${e.message}`,
          orchestrator: job.url,
        });
      }
      return;
    case 'paramsUpdated':
      d.paramsAt = now;
      // A pipeline may reload on new params (ai-runner allows 10 s without output, ComfyUI 30 s).
      if (d.job?.firstOutputAt !== undefined) d.job.expectOutputFrom = now;
      return;
    case 'paymentFailed':
      if (!job) return;
      if (countsAgainstOrchestrator(e.failure)) troubled(d, job, e.failure, now, out);
      else {
        // Our account's trouble: another orchestrator would not be paid either. Stay and say so.
        d.accountTrouble = e.failure;
        note(d, now, e.failure);
      }
      return;
    case 'loopDelay':
      if (e.ms >= d.limits.starvedLoopDelayMs) d.starved = { at: now, ms: e.ms };
      return;
    case 'tick':
      if (e.lastPacketAt !== undefined) d.lastPacketAt = e.lastPacketAt;
      tick(d, now, out);
      return;
  }
}

function tick(d: PolicyState, now: number, out: PolicyCommand[]): void {
  const { limits } = d;
  const lastMedia = Math.max(d.lastPacketAt ?? 0, d.lastInputAt ?? 0, d.startedAt);
  if (now - lastMedia > limits.ingestTimeoutMs) {
    end(d, out, `no media from the publisher for ${limits.ingestTimeoutMs} ms`, {
      blame: 'client',
      code: 'publisher',
      message: 'the publisher stopped sending media',
    });
    return;
  }
  if (!d.job) {
    if (d.pending || !d.noJob) return;
    if (now - d.noJob.since >= limits.noOrchestratorGraceMs) {
      end(d, out, `no orchestrator available for ${limits.noOrchestratorGraceMs} ms: ${d.noJob.why}`);
      return;
    }
    if (now >= d.noJob.retryAt) retryWithoutJob(d, now, out);
    return;
  }
  const job = d.job;
  if (job.trouble) {
    // Still failing and nobody to move to yet: look again now and then (new orchestrators, budget).
    if (!d.pending && now >= job.trouble.retryAt) replace(d, job, now, out);
    return;
  }
  checkLiveness(d, job, now, out);
}

/** First output and stalls: the rules that judge a running job by what comes back. */
function checkLiveness(d: PolicyState, job: JobState, now: number, out: PolicyCommand[]): void {
  const { limits } = d;
  if (job.firstInputAt === undefined) return; // nothing sent to it yet: nothing owed
  const inputFlowing = d.lastInputAt !== undefined && now - d.lastInputAt < INPUT_GAP_MS;
  if (!inputFlowing) return; // no input, no output: not the orchestrator's fault
  const loading = isLoading(job, now);
  const resumed = d.inputResumedAt ?? 0;
  let failure: Failure | undefined;
  if (job.firstOutputAt === undefined || job.expectOutputFrom !== undefined) {
    if (loading) {
      if (now - (job.loadingSince ?? now) > limits.maxLoadingMs) {
        failure = orchestratorFailure(
          job,
          'first-output-timeout',
          `still LOADING after ${Math.round(limits.maxLoadingMs / 1000)} s`,
        );
      }
    } else {
      const from = Math.max(job.firstInputAt, job.expectOutputFrom ?? 0, resumed);
      if (now - from > limits.firstOutputTimeoutMs) {
        failure = orchestratorFailure(
          job,
          'first-output-timeout',
          `no output within ${Math.round((now - from) / 1000)} s of input (first-output timeout)`,
        );
      }
    }
  } else if (!loading) {
    const from = Math.max(job.lastOutputAt ?? job.firstOutputAt, resumed);
    if (now - from > limits.noOutputTimeoutMs) {
      failure = orchestratorFailure(job, 'stall', `no output for ${now - from} ms while input flows`);
    }
  }
  if (!failure) return;
  // Our own starvation is not the orchestrator's fault: wait for a window without it.
  if (d.starved && now - d.starved.at < limits.noOutputTimeoutMs) {
    d.overloaded = { ms: d.starved.ms };
    return;
  }
  d.overloaded = undefined;
  troubled(d, job, failure, now, out);
}

/** The orchestrator says its pipeline is loading, and said so recently. */
function isLoading(job: JobState, now: number): boolean {
  const r = job.reported;
  return r?.state === 'LOADING' && now - r.at <= STATUS_FRESH_MS;
}

/** Troubles that output coming back undoes. */
const LIVENESS_CODES = new Set<Failure['code']>(['stall', 'first-output-timeout']);

function onStatus(
  d: PolicyState,
  job: JobState,
  state: string | undefined,
  restarts: number | undefined,
  now: number,
  out: PolicyCommand[],
): void {
  const prev = job.reported;
  job.reported = { state: state ?? prev?.state, restarts: restarts ?? prev?.restarts, at: now };
  const restarted = restarts !== undefined && prev?.restarts !== undefined && restarts > prev.restarts;
  if (state === 'LOADING' || restarted) {
    if (prev?.state !== 'LOADING' || restarted) job.loadingSince = now;
    // A pipeline (re)loading after it had sent output owes a first output again.
    if (job.firstOutputAt !== undefined) job.expectOutputFrom ??= now;
  } else if (state !== undefined) {
    // Loaded: the first output is owed from now, not from before the load.
    if (prev?.state === 'LOADING') job.expectOutputFrom = now;
    job.loadingSince = undefined;
  }
  if (state === 'ERROR') {
    troubled(
      d,
      job,
      orchestratorFailure(job, 'pipeline-error', 'the orchestrator reports its pipeline in ERROR'),
      now,
      out,
    );
  }
}

/** A job that is alive but failing its stream: replace it if we can, else stay on it. */
function troubled(d: PolicyState, job: JobState, failure: Failure, now: number, out: PolicyCommand[]): void {
  note(d, now, failure);
  if (!job.trouble) job.trouble = { failure, at: now, retryAt: now };
  if (countsAgainstOrchestrator(failure) && !job.suspended) {
    job.suspended = true;
    out.push({ type: 'suspend', url: job.url, failure });
  }
  if (!d.pending) replace(d, job, now, out);
}

function replace(d: PolicyState, job: JobState, now: number, out: PolicyCommand[]): void {
  const trouble = job.trouble;
  if (!trouble) return;
  trouble.retryAt = now + d.limits.noOutputTimeoutMs;
  if (swapsInWindow(d, now) + 1 > d.limits.maxSwaps) {
    trouble.why = budgetNote(d, now);
    return;
  }
  trouble.why = 'moving to another orchestrator';
  startJob(d, now, out, { exclude: [job.url], replaces: job.id });
}

/** The job is gone: close it, and start another (others first, then the same one again). */
function onJobDead(d: PolicyState, job: JobState, failure: Failure, now: number, out: PolicyCommand[]): void {
  note(d, now, failure);
  if (countsAgainstOrchestrator(failure) && !job.suspended) {
    job.suspended = true;
    out.push({ type: 'suspend', url: job.url, failure });
  }
  out.push({ type: 'closeJob', jobId: job.id, reason: failure.message });
  const record: SwapRecord = {
    at: job.trouble?.at ?? now,
    from: job.url,
    to: null,
    reason: (job.trouble?.failure ?? failure).message,
    blame: failure.blame,
    code: failure.code,
    tookMs: null,
  };
  d.swaps.push(record);
  out.push({ type: 'swap', record: { ...record } });
  d.job = undefined;
  d.overloaded = undefined;
  d.noJob = {
    since: now,
    why: failure.message,
    retryAt: now,
    deadUrl: job.url,
    excludeNext: [job.url],
    retriedSame: false,
  };
  if (failure.blame === 'client') {
    end(d, out, `stopped by the client's input: ${failure.message}`, failure);
    return;
  }
  if (d.pending) {
    // A replacement was already being started: it takes over when it starts.
    d.pending.replaces = undefined;
    return;
  }
  retryWithoutJob(d, now, out);
}

function retryWithoutJob(d: PolicyState, now: number, out: PolicyCommand[]): void {
  const noJob = d.noJob;
  if (!noJob) return;
  // The failure that left us without a job is already counted: more than the budget must wait.
  if (swapsInWindow(d, now) > d.limits.maxSwaps) {
    const oldest = d.swaps.filter((r) => now - r.at < d.limits.swapWindowMs)[0];
    noJob.retryAt = (oldest?.at ?? now) + d.limits.swapWindowMs;
    noJob.why = budgetNote(d, now);
    return;
  }
  noJob.retryAt = now + NO_ORCHESTRATOR_RETRY_MS;
  // First move away from the orchestrator that failed; after that anything goes.
  const exclude = noJob.excludeNext;
  noJob.excludeNext = [];
  startJob(d, now, out, { exclude });
}

function onJobStarted(d: PolicyState, jobId: number, url: string, now: number, out: PolicyCommand[]): void {
  const pending = d.pending;
  if (!pending || pending.jobId !== jobId) {
    out.push({ type: 'closeJob', jobId, reason: 'not needed any more' });
    return;
  }
  d.pending = undefined;
  d.startFailures = [];
  if (!d.prepaid.includes(url)) d.prepaid.push(url);
  const old = d.job;
  if (old) {
    const trouble = old.trouble;
    out.push({ type: 'closeJob', jobId: old.id, reason: `replaced by ${url}` });
    const record: SwapRecord = {
      at: trouble?.at ?? now,
      from: old.url,
      to: url,
      reason: trouble?.failure.message ?? 'replaced',
      blame: trouble?.failure.blame ?? 'orchestrator',
      code: trouble?.failure.code ?? 'stall',
      tookMs: now - (trouble?.at ?? now),
    };
    d.swaps.push(record);
    out.push({ type: 'swap', record: { ...record } });
  } else {
    const open = d.swaps.at(-1);
    if (open && open.to === null) {
      open.to = url;
      open.tookMs = now - open.at;
      out.push({ type: 'swap', record: { ...open }, update: true });
    }
  }
  d.job = { id: jobId, url, startedAt: now, suspended: false };
  d.hadJob = true;
  d.noJob = undefined;
  d.accountTrouble = undefined;
  d.overloaded = undefined;
  out.push({ type: 'attachInput', jobId });
}

function onStartFailed(
  d: PolicyState,
  jobId: number,
  url: string,
  failure: Failure,
  now: number,
  out: PolicyCommand[],
): void {
  const pending = d.pending;
  if (!pending || pending.jobId !== jobId) return;
  note(d, now, { ...failure, orchestrator: url });
  d.startFailures.push(`${url}: ${failure.message}`);
  if (countsAgainstOrchestrator(failure)) out.push({ type: 'suspend', url, failure });
  d.pending = undefined;
  if (pending.target) {
    // The retry on the same orchestrator failed too: nothing left to try right now.
    onNoOrchestrator(
      d,
      { blame: failure.blame, code: 'no-orchestrator', message: failure.message },
      now,
      out,
      pending,
    );
    return;
  }
  startJob(d, now, out, { exclude: [...pending.exclude, url], replaces: pending.replaces });
}

function onNoOrchestrator(
  d: PolicyState,
  failure: Failure,
  now: number,
  out: PolicyCommand[],
  pending = d.pending,
): void {
  d.pending = undefined;
  const why = [...d.startFailures, failure.message].join('; ');
  d.startFailures = [];
  if (!d.hadJob) {
    // Nothing ever ran: the publisher gets a clear refusal now rather than a silent stream.
    const f: Failure = { ...failure, message: why };
    note(d, now, f);
    end(d, out, `no orchestrator available: ${why}`, f);
    return;
  }
  const job = d.job;
  if (job && pending?.replaces === job.id && job.trouble) {
    // The only orchestrator we have is failing: stay on it, degraded, and look again later.
    job.trouble.why = `no other orchestrator to move to (${why})`;
    job.trouble.retryAt = now + d.limits.noOutputTimeoutMs;
    return;
  }
  const noJob = d.noJob;
  if (!noJob) return;
  note(d, now, {
    blame: failure.blame,
    code: 'no-orchestrator',
    message: `no orchestrator available: ${why}`,
  });
  if (noJob.deadUrl && !noJob.retriedSame) {
    // Nobody else: the orchestrator that failed may be fine again (a pipeline restart, say).
    noJob.retriedSame = true;
    noJob.why = `no other orchestrator; retrying ${noJob.deadUrl}`;
    startJob(d, now, out, { exclude: [], target: noJob.deadUrl });
    return;
  }
  noJob.why = `no orchestrator available: ${why}`;
  noJob.retryAt = now + NO_ORCHESTRATOR_RETRY_MS;
}

function startJob(
  d: PolicyState,
  now: number,
  out: PolicyCommand[],
  opts: { exclude: string[]; target?: string; replaces?: number },
): void {
  const jobId = d.nextJobId++;
  d.pending = { jobId, since: now, exclude: opts.exclude, target: opts.target, replaces: opts.replaces };
  out.push({
    type: 'startJob',
    jobId,
    ...(opts.target ? { target: opts.target } : {}),
    exclude: [...opts.exclude],
    prepaid: [...d.prepaid],
  });
}

function end(d: PolicyState, out: PolicyCommand[], reason: string, failure?: Failure): void {
  d.state = 'ended';
  d.reason = reason;
  d.endReason = reason;
  d.pending = undefined;
  out.push({ type: 'endStream', reason, ...(failure ? { failure } : {}) });
  out.push({ type: 'setState', state: 'ended', reason });
}

function note(d: PolicyState, now: number, failure: Failure): void {
  d.lastFailure = { ...failure, at: now };
}

function orchestratorFailure(job: JobState, code: Failure['code'], message: string): Failure {
  return { blame: 'orchestrator', code, message, orchestrator: job.url };
}

function budgetNote(d: PolicyState, now: number): string {
  const used = swapsInWindow(d, now);
  return `swap budget exhausted (${used} swaps within ${Math.round(d.limits.swapWindowMs / 1000)} s, at most ${d.limits.maxSwaps})`;
}

/** The state and its reason as the facts stand; a change is announced with setState. */
function publishState(d: PolicyState, now: number, out: PolicyCommand[]): void {
  if (d.state === 'ended') return; // end() announced it
  const [state, reason] = derive(d, now);
  if (state === d.state && reason === d.reason) return;
  d.state = state;
  d.reason = reason;
  out.push({ type: 'setState', state, reason });
}

function derive(d: PolicyState, now: number): [StreamState, string | null] {
  const job = d.job;
  if (!job) {
    if (!d.hadJob) return ['starting', null];
    const noJob = d.noJob;
    return [
      'degraded',
      noJob ? `no orchestrator running the stream: ${noJob.why}` : 'moving to another orchestrator',
    ];
  }
  if (!d.publisherConnected) return ['starting', null];
  if (job.trouble)
    return [
      'degraded',
      `${job.trouble.failure.message}; ${job.trouble.why ?? 'moving to another orchestrator'}`,
    ];
  if (d.overloaded) {
    return [
      'degraded',
      `no output, but the gateway itself is overloaded (event loop delayed ${Math.round(d.overloaded.ms)} ms): not blaming the orchestrator`,
    ];
  }
  if (d.accountTrouble) return ['degraded', d.accountTrouble.message];
  if (job.firstOutputAt === undefined || job.expectOutputFrom !== undefined) {
    const loading = isLoading(job, now);
    if (loading) {
      const restarts = job.reported?.restarts;
      return ['loading', `the orchestrator reports LOADING${restarts ? ` (restarts: ${restarts})` : ''}`];
    }
    return [
      'loading',
      job.firstOutputAt === undefined ? 'waiting for the first output' : 'waiting for output after a change',
    ];
  }
  return ['live', null];
}

function clone(s: PolicyState): PolicyState {
  return {
    ...s,
    job: s.job && {
      ...s.job,
      reported: s.job.reported && { ...s.job.reported },
      trouble: s.job.trouble && { ...s.job.trouble },
    },
    pending: s.pending && { ...s.pending, exclude: [...s.pending.exclude] },
    startFailures: [...s.startFailures],
    swaps: s.swaps.map((r) => ({ ...r })),
    noJob: s.noJob && { ...s.noJob },
    prepaid: [...s.prepaid],
  };
}
