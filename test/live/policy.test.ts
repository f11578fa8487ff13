// Every failover rule, on the pure policy with a fake clock: no timers, no sockets.
import { describe, expect, it } from 'vitest';
import type { Failure } from '../../src/live/cause.ts';
import {
  initialState,
  POLICY_DEFAULTS,
  type PolicyCommand,
  type PolicyEvent,
  type PolicyLimits,
  type PolicyState,
  step,
} from '../../src/live/policy.ts';

const A = 'https://a.example:8935';
const B = 'https://b.example:8935';

/** The policy with a clock the test moves, and the commands of the last event. */
class Sim {
  state: PolicyState;
  now = 1_000_000;
  last: PolicyCommand[] = [];
  all: PolicyCommand[] = [];

  constructor(limits: Partial<PolicyLimits> = {}) {
    this.state = initialState({ ...POLICY_DEFAULTS, ...limits }, this.now);
  }

  send(event: PolicyEvent): PolicyCommand[] {
    const r = step(this.state, event, this.now);
    this.state = r.state;
    this.last = r.commands;
    this.all.push(...r.commands);
    return r.commands;
  }

  /** Moves the clock by `ms`, ticking (and feeding input, output) every 100 ms on the way. */
  run(ms: number, feed: { input?: boolean; output?: boolean } = { input: true }): PolicyCommand[] {
    const seen: PolicyCommand[] = [];
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + 100);
      if (feed.input) seen.push(...this.send({ type: 'inputSeen' }));
      if (feed.output && this.state.job)
        seen.push(...this.send({ type: 'outputSeen', jobId: this.state.job.id }));
      seen.push(...this.send({ type: 'tick', lastPacketAt: feed.input ? this.now : undefined }));
      if (this.state.state === 'ended') break;
    }
    return seen;
  }

  /** Starts the stream on `url` and connects the publisher. Returns the job id. */
  startOn(url: string): number {
    const [cmd] = this.send({ type: 'start' });
    const jobId = startCmd(cmd).jobId;
    this.send({ type: 'jobStarted', jobId, url });
    this.send({ type: 'publisherConnected' });
    return jobId;
  }

  /** Starts on `url`, then sends input and output until the stream is live. */
  liveOn(url: string): number {
    const id = this.startOn(url);
    this.run(2000, { input: true, output: true });
    expect(this.state.state).toBe('live');
    return id;
  }

  get jobId(): number {
    const id = this.state.job?.id;
    if (id === undefined) throw new Error('no job');
    return id;
  }
}

function startCmd(cmd: PolicyCommand | undefined): Extract<PolicyCommand, { type: 'startJob' }> {
  if (cmd?.type !== 'startJob') throw new Error(`expected startJob, got ${JSON.stringify(cmd)}`);
  return cmd;
}

const of = <T extends PolicyCommand['type']>(cmds: PolicyCommand[], type: T) =>
  cmds.filter((c): c is Extract<PolicyCommand, { type: T }> => c.type === type);

const orchestratorGone: Failure = {
  blame: 'network',
  code: 'output',
  message: 'output channel: connection refused',
};

describe('starting', () => {
  it('starts a job, asks for a keyframe when it runs, and is loading until output comes back', () => {
    const sim = new Sim();
    const [cmd] = sim.send({ type: 'start' });
    expect(startCmd(cmd)).toMatchObject({ jobId: 1, exclude: [], prepaid: [] });
    expect(sim.state.state).toBe('starting');
    expect(of(sim.send({ type: 'jobStarted', jobId: 1, url: A }), 'attachInput')).toHaveLength(1);
    sim.send({ type: 'publisherConnected' });
    expect(sim.state.state).toBe('loading');
    expect(sim.state.reason).toBe('waiting for the first output');
    sim.run(500, { input: true, output: true });
    expect(sim.state.state).toBe('live');
    expect(of(sim.all, 'setState').map((c) => c.state)).toEqual(['loading', 'live']);
  });

  it('tries the next orchestrator when a job start fails, suspending only for the orchestrator’s faults', () => {
    const sim = new Sim();
    sim.send({ type: 'start' });
    const refused: Failure = { blame: 'orchestrator', code: 'job-start', message: 'job start failed: 500' };
    const cmds = sim.send({ type: 'jobStartFailed', jobId: 1, url: A, failure: refused });
    expect(of(cmds, 'suspend')).toEqual([{ type: 'suspend', url: A, failure: refused }]);
    expect(startCmd(of(cmds, 'startJob')[0]).exclude).toEqual([A]);
    // Our own deposit is too low: not B's fault.
    const ours: Failure = { blame: 'gateway', code: 'job-start', message: 'job start failed: no deposit' };
    const next = sim.send({ type: 'jobStartFailed', jobId: 2, url: B, failure: ours });
    expect(of(next, 'suspend')).toEqual([]);
    expect(startCmd(of(next, 'startJob')[0]).exclude).toEqual([A, B]);
    expect(sim.state.lastFailure).toMatchObject({ blame: 'gateway', orchestrator: B });
  });

  it('with no orchestrator at all, ends at once with every reason (the WHIP answer is a 503)', () => {
    const sim = new Sim();
    sim.send({ type: 'start' });
    sim.send({
      type: 'jobStartFailed',
      jobId: 1,
      url: A,
      failure: { blame: 'orchestrator', code: 'job-start', message: 'job start failed: 500' },
    });
    const cmds = sim.send({
      type: 'noOrchestrator',
      jobId: 2,
      failure: {
        blame: 'orchestrator',
        code: 'no-orchestrator',
        message: 'no orchestrator can run model "x"',
      },
    });
    const [endCmd] = of(cmds, 'endStream');
    expect(endCmd.reason).toBe(
      `no orchestrator available: ${A}: job start failed: 500; no orchestrator can run model "x"`,
    );
    expect(sim.state.state).toBe('ended');
  });

  it('closes a job that starts after the stream ended', () => {
    const sim = new Sim();
    sim.send({ type: 'start' });
    sim.send({ type: 'stop', reason: 'publisher sent DELETE' });
    expect(sim.send({ type: 'jobStarted', jobId: 1, url: A })).toEqual([
      { type: 'closeJob', jobId: 1, reason: 'stream ended' },
    ]);
  });
});

describe('first output', () => {
  it('a warm-up reported as LOADING, longer than the stall and first-output timeouts, is not a failure', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, firstOutputTimeoutMs: 5000 });
    const id = sim.startOn(A);
    // An ai-runner pipeline loading for 40 s, reporting LOADING every 10 s.
    for (let t = 0; t < 40_000; t += 10_000) {
      sim.send({ type: 'orchestratorStatus', jobId: id, state: 'LOADING', restarts: 0 });
      expect(of(sim.run(10_000), 'startJob')).toEqual([]);
      expect(sim.state.state).toBe('loading');
      expect(sim.state.reason).toBe('the orchestrator reports LOADING');
    }
    sim.send({ type: 'orchestratorStatus', jobId: id, state: 'ONLINE' });
    sim.run(1000, { input: true, output: true });
    expect(sim.state.state).toBe('live');
    expect(of(sim.all, 'suspend')).toEqual([]);
    expect(of(sim.all, 'startJob')).toHaveLength(1);
  });

  it('a warm-up without status events is given the first-output timeout, not the stall timeout', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, firstOutputTimeoutMs: 30_000 });
    sim.startOn(A);
    expect(sim.run(25_000)).not.toContainEqual(expect.objectContaining({ type: 'startJob' }));
    expect(sim.state.state).toBe('loading');
  });

  it('no first output within the first-output timeout: suspend it and move to another orchestrator', () => {
    const sim = new Sim({ firstOutputTimeoutMs: 30_000 });
    const id = sim.startOn(A);
    const cmds = sim.run(31_000);
    expect(of(cmds, 'suspend')).toHaveLength(1);
    expect(of(cmds, 'suspend')[0].failure).toMatchObject({
      blame: 'orchestrator',
      code: 'first-output-timeout',
    });
    const start = startCmd(of(cmds, 'startJob')[0]);
    expect(start.exclude).toEqual([A]);
    expect(sim.state.state).toBe('degraded');
    // The old job keeps the stream until the new one runs.
    expect(of(cmds, 'closeJob')).toEqual([]);
    const started = sim.send({ type: 'jobStarted', jobId: start.jobId, url: B });
    expect(of(started, 'closeJob')).toEqual([{ type: 'closeJob', jobId: id, reason: `replaced by ${B}` }]);
    expect(sim.state.swaps).toEqual([
      expect.objectContaining({ from: A, to: B, code: 'first-output-timeout', blame: 'orchestrator' }),
    ]);
    expect(sim.state.state).toBe('loading');
  });

  it('a pipeline LOADING for longer than it may is a failure too', () => {
    const sim = new Sim({ maxLoadingMs: 60_000 });
    const id = sim.startOn(A);
    let cmds: PolicyCommand[] = [];
    for (let t = 0; t < 70_000 && cmds.length === 0; t += 5000) {
      sim.send({ type: 'orchestratorStatus', jobId: id, state: 'LOADING' });
      cmds = of(sim.run(5000), 'startJob');
    }
    expect(sim.now - 1_000_000).toBeGreaterThan(60_000);
    expect(sim.state.lastFailure?.message).toContain('still LOADING');
  });

  it('no input, no output owed: a paused publisher does not fail the orchestrator', () => {
    const sim = new Sim({ firstOutputTimeoutMs: 5000, ingestTimeoutMs: 60_000 });
    sim.startOn(A);
    expect(of(sim.run(20_000, {}), 'startJob')).toEqual([]);
  });
});

describe('stalls', () => {
  it('output that stops while input flows: suspend, move, and the new job replaces the old', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000 });
    const id = sim.liveOn(A);
    const cmds = sim.run(2500);
    expect(of(cmds, 'suspend')[0]).toMatchObject({ url: A, failure: { code: 'stall' } });
    const start = startCmd(of(cmds, 'startJob')[0]);
    expect(start).toMatchObject({ exclude: [A] });
    expect(sim.state.reason).toMatch(
      /^no output for \d+ ms while input flows; moving to another orchestrator$/,
    );
    const started = sim.send({ type: 'jobStarted', jobId: start.jobId, url: B });
    expect(of(started, 'closeJob')[0].jobId).toBe(id);
    expect(of(started, 'swap')[0].record).toMatchObject({ from: A, to: B, code: 'stall' });
    // The new job gets the cached input GOP at once (the data plane asks for a keyframe without one).
    expect(of(started, 'attachInput')).toEqual([{ type: 'attachInput', jobId: start.jobId }]);
  });

  it('the default stall timeout outlasts an ai-runner restart (5 s without output, then LOADING)', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    sim.run(6000); // ai-runner notices after 5 s and restarts the pipeline
    sim.send({ type: 'orchestratorStatus', jobId: id, state: 'LOADING', restarts: 1 });
    expect(sim.state.state).toBe('loading');
    sim.run(8000);
    sim.send({ type: 'orchestratorStatus', jobId: id, state: 'ONLINE', restarts: 1 });
    sim.run(1000, { input: true, output: true });
    expect(of(sim.all, 'startJob')).toHaveLength(1);
    expect(sim.state.state).toBe('live');
  });

  it('a restart count going up means the pipeline reloads: no stall while it does', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000 });
    const id = sim.liveOn(A);
    sim.send({ type: 'orchestratorStatus', jobId: id, state: 'ONLINE', restarts: 0 });
    sim.run(1000);
    sim.send({ type: 'orchestratorStatus', jobId: id, restarts: 1 });
    expect(of(sim.run(5000), 'startJob')).toEqual([]);
    expect(sim.state.state).toBe('loading');
  });

  it('new params may reload the pipeline: output is owed within the first-output timeout', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, firstOutputTimeoutMs: 15_000 });
    sim.liveOn(A);
    sim.send({ type: 'paramsUpdated' });
    expect(of(sim.run(10_000), 'startJob')).toEqual([]);
    expect(sim.state.reason).toBe('waiting for output after a change');
    expect(of(sim.run(6000), 'startJob')).toHaveLength(1);
  });

  it('the orchestrator reporting ERROR is a failure at once', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const cmds = sim.send({ type: 'orchestratorStatus', jobId: id, state: 'ERROR' });
    expect(of(cmds, 'suspend')[0].failure.code).toBe('pipeline-error');
    expect(of(cmds, 'startJob')).toHaveLength(1);
  });

  it('a job whose channels died is closed and replaced, others first', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const cmds = sim.send({ type: 'jobFailed', jobId: id, failure: orchestratorGone });
    expect(cmds.map((c) => c.type)).toEqual(['suspend', 'closeJob', 'swap', 'startJob', 'setState']);
    expect(startCmd(of(cmds, 'startJob')[0]).exclude).toEqual([A]);
    expect(of(cmds, 'swap')[0].record).toMatchObject({ from: A, to: null, blame: 'network' });
    expect(sim.state.state).toBe('degraded');
    sim.send({ type: 'jobStarted', jobId: startCmd(of(cmds, 'startJob')[0]).jobId, url: B });
    expect(sim.state.swaps[0]).toMatchObject({ from: A, to: B, tookMs: 0 });
  });
});

describe('our own starvation', () => {
  it('a stall while the event loop was starved is not blamed on the orchestrator', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, starvedLoopDelayMs: 250 });
    sim.liveOn(A);
    // Output stops while the gateway's loop is blocked for 400 ms every second.
    let cmds: PolicyCommand[] = [];
    for (let i = 0; i < 6; i++) {
      sim.send({ type: 'loopDelay', ms: 400 });
      cmds = cmds.concat(sim.run(1000));
    }
    expect(of(cmds, 'suspend')).toEqual([]);
    expect(of(cmds, 'startJob')).toEqual([]);
    expect(sim.state.state).toBe('degraded');
    expect(sim.state.reason).toContain('the gateway itself is overloaded (event loop delayed 400 ms)');
    // A short delay is not starvation; once a whole window passes without it, the stall counts.
    sim.send({ type: 'loopDelay', ms: 40 });
    expect(of(sim.run(2100), 'suspend')).toHaveLength(1);
  });

  it('output coming back clears the overload note', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000 });
    sim.liveOn(A);
    for (let i = 0; i < 3; i++) {
      sim.send({ type: 'loopDelay', ms: 1000 });
      sim.run(1000);
    }
    expect(sim.state.reason).toContain('overloaded');
    sim.run(300, { input: true, output: true });
    expect(sim.state.state).toBe('live');
  });
});

describe('the only orchestrator', () => {
  it('stalling with nowhere to go: the stream stays on it, degraded, and recovers when output returns', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000 });
    const id = sim.liveOn(A);
    const start = startCmd(of(sim.run(2500), 'startJob')[0]);
    const cmds = sim.send({
      type: 'noOrchestrator',
      jobId: start.jobId,
      failure: {
        blame: 'orchestrator',
        code: 'no-orchestrator',
        message: `no orchestrator can run model "x": ${A}: excluded`,
      },
    });
    expect(of(cmds, 'closeJob')).toEqual([]);
    expect(of(cmds, 'endStream')).toEqual([]);
    expect(sim.state.job?.id).toBe(id);
    expect(sim.state.state).toBe('degraded');
    expect(sim.state.reason).toContain('no other orchestrator to move to');
    // It keeps looking now and then, and never ends the stream for it.
    const later = sim.run(60_000);
    expect(of(later, 'endStream')).toEqual([]);
    expect(of(later, 'closeJob')).toEqual([]);
    expect(of(later, 'startJob').length).toBeGreaterThan(0);
    // The suspension is said once, not at every look.
    expect(of(sim.all, 'suspend')).toHaveLength(1);
    for (const c of of(later, 'startJob')) {
      sim.send({
        type: 'noOrchestrator',
        jobId: c.jobId,
        failure: { blame: 'orchestrator', code: 'no-orchestrator', message: 'none' },
      });
    }
    sim.run(500, { input: true, output: true });
    expect(sim.state.state).toBe('live');
    expect(sim.state.job?.id).toBe(id);
  });

  it('its job dying: retried on the same orchestrator, without a new prepayment', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const first = startCmd(
      of(sim.send({ type: 'jobFailed', jobId: id, failure: orchestratorGone }), 'startJob')[0],
    );
    expect(first.exclude).toEqual([A]);
    const retry = startCmd(
      of(
        sim.send({
          type: 'noOrchestrator',
          jobId: first.jobId,
          failure: { blame: 'orchestrator', code: 'no-orchestrator', message: 'none' },
        }),
        'startJob',
      )[0],
    );
    expect(retry.target).toBe(A);
    expect(retry.prepaid).toContain(A);
    sim.send({ type: 'jobStarted', jobId: retry.jobId, url: A });
    expect(sim.state.job?.url).toBe(A);
    expect(sim.state.prepaid).toEqual([A]);
  });

  it('gone for good: degraded while it retries, then the stream ends after the grace period', () => {
    const sim = new Sim({ noOrchestratorGraceMs: 5000 });
    const id = sim.liveOn(A);
    const none: Failure = {
      blame: 'orchestrator',
      code: 'no-orchestrator',
      message: 'no orchestrator can run model "x"',
    };
    const first = startCmd(
      of(sim.send({ type: 'jobFailed', jobId: id, failure: orchestratorGone }), 'startJob')[0],
    );
    const retry = startCmd(
      of(sim.send({ type: 'noOrchestrator', jobId: first.jobId, failure: none }), 'startJob')[0],
    );
    sim.send({ type: 'jobStartFailed', jobId: retry.jobId, url: A, failure: orchestratorGone });
    expect(sim.state.state).toBe('degraded');
    expect(sim.state.reason).toContain('no orchestrator available');
    let ended: Extract<PolicyCommand, { type: 'endStream' }>[] = [];
    for (let i = 0; i < 10 && ended.length === 0; i++) {
      for (const c of of(sim.run(1000), 'startJob'))
        sim.send({ type: 'noOrchestrator', jobId: c.jobId, failure: none });
      ended = of(sim.all, 'endStream');
    }
    expect(ended[0].reason).toMatch(/^no orchestrator available for 5000 ms: no orchestrator available: /);
  });
});

describe('swap budget', () => {
  it('after maxSwaps within the window, a failing job is kept (degraded) with the budget as the reason', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, maxSwaps: 2, swapWindowMs: 180_000 });
    sim.liveOn(A);
    for (const url of [B, A]) {
      const start = startCmd(of(sim.run(2500), 'startJob')[0]);
      sim.send({ type: 'jobStarted', jobId: start.jobId, url });
      sim.run(2000, { input: true, output: true });
    }
    expect(sim.state.swaps).toHaveLength(2);
    const cmds = sim.run(2500);
    expect(of(cmds, 'startJob')).toEqual([]);
    expect(of(cmds, 'endStream')).toEqual([]);
    expect(sim.state.state).toBe('degraded');
    expect(sim.state.reason).toContain('swap budget exhausted (2 swaps within 180 s, at most 2)');
  });

  it('a job that dies with the budget spent: no new job until the window frees, ending after the grace', () => {
    const sim = new Sim({ maxSwaps: 1, swapWindowMs: 60_000, noOrchestratorGraceMs: 10_000 });
    const id = sim.liveOn(A);
    const start = startCmd(
      of(sim.send({ type: 'jobFailed', jobId: id, failure: orchestratorGone }), 'startJob')[0],
    );
    sim.send({ type: 'jobStarted', jobId: start.jobId, url: B });
    sim.run(2000, { input: true, output: true });
    const cmds = sim.send({ type: 'jobFailed', jobId: sim.jobId, failure: orchestratorGone });
    expect(of(cmds, 'startJob')).toEqual([]);
    expect(sim.state.reason).toContain('swap budget exhausted (2 swaps within 60 s, at most 1)');
    const later = sim.run(11_000);
    expect(of(later, 'startJob')).toEqual([]);
    expect(of(later, 'endStream')[0].reason).toContain('swap budget exhausted');
  });

  it('swaps older than the window no longer count', () => {
    const sim = new Sim({ noOutputTimeoutMs: 2000, maxSwaps: 1, swapWindowMs: 30_000 });
    sim.liveOn(A);
    const start = startCmd(of(sim.run(2500), 'startJob')[0]);
    sim.send({ type: 'jobStarted', jobId: start.jobId, url: B });
    sim.run(40_000, { input: true, output: true });
    expect(of(sim.run(2500), 'startJob')).toHaveLength(1);
  });
});

describe('blame', () => {
  it('an error event after the client changed params is the client’s: no suspension, no swap', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    sim.send({ type: 'paramsUpdated' });
    const cmds = sim.send({
      type: 'orchestratorError',
      jobId: id,
      message: 'unknown effect "no-such-effect"',
    });
    expect(cmds).toEqual([]);
    expect(sim.state.lastFailure).toMatchObject({ blame: 'client', code: 'params-rejected' });
    sim.run(2000, { input: true, output: true });
    expect(of(sim.all, 'suspend')).toEqual([]);
    expect(sim.state.state).toBe('live');
  });

  it('an error event on its own is recorded as the orchestrator’s, and nothing more', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    expect(sim.send({ type: 'orchestratorError', jobId: id, message: 'CUDA hiccup' })).toEqual([]);
    expect(sim.state.lastFailure).toMatchObject({ blame: 'orchestrator', code: 'reported-error' });
  });

  it('a job killed by the client’s input ends the stream without suspending the orchestrator', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const bad: Failure = { blame: 'client', code: 'input', message: 'the input cannot be decoded' };
    const cmds = sim.send({ type: 'jobFailed', jobId: id, failure: bad });
    expect(of(cmds, 'suspend')).toEqual([]);
    expect(of(cmds, 'endStream')[0]).toMatchObject({ failure: bad });
  });

  it('a payment failing on our own account: no suspension, no swap, degraded with the reason', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const ours: Failure = {
      blame: 'gateway',
      code: 'payment',
      message: 'payment failed: the TicketBroker deposit could not be read',
    };
    expect(sim.send({ type: 'paymentFailed', jobId: id, failure: ours })).toEqual([
      { type: 'setState', state: 'degraded', reason: ours.message },
    ]);
  });

  it('a payment the orchestrator refuses: suspend and move', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    const refused: Failure = {
      blame: 'orchestrator',
      code: 'price',
      message: 'payment failed: price doubled',
    };
    const cmds = sim.send({ type: 'paymentFailed', jobId: id, failure: refused });
    expect(of(cmds, 'suspend')).toHaveLength(1);
    expect(of(cmds, 'startJob')).toHaveLength(1);
    // Output still coming does not undo a refused payment.
    sim.run(500, { input: true, output: true });
    expect(sim.state.state).toBe('degraded');
  });

  it('events for a job that is no longer current change nothing', () => {
    const sim = new Sim();
    const id = sim.liveOn(A);
    expect(sim.send({ type: 'jobFailed', jobId: id + 7, failure: orchestratorGone })).toEqual([]);
    expect(sim.send({ type: 'orchestratorStatus', jobId: id + 7, state: 'ERROR' })).toEqual([]);
  });
});

describe('the publisher', () => {
  it('no media for the ingest timeout ends the stream', () => {
    const sim = new Sim({ ingestTimeoutMs: 3000 });
    sim.liveOn(A);
    const cmds = sim.run(3500, {});
    expect(of(cmds, 'endStream')[0]).toMatchObject({ reason: 'no media from the publisher for 3000 ms' });
  });

  it('stop ends the stream with its reason', () => {
    const sim = new Sim();
    sim.liveOn(A);
    expect(of(sim.send({ type: 'stop', reason: 'publisher sent DELETE' }), 'endStream')).toEqual([
      { type: 'endStream', reason: 'publisher sent DELETE' },
    ]);
    expect(sim.send({ type: 'tick' })).toEqual([]);
  });
});

it('step never modifies the state it is given', () => {
  const sim = new Sim();
  sim.liveOn(A);
  const before = structuredClone(sim.state);
  const frozen = sim.state;
  step(frozen, { type: 'jobFailed', jobId: sim.jobId, failure: orchestratorGone }, sim.now);
  expect(frozen).toEqual(before);
});
