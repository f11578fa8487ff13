// Events-channel messages as real orchestrators send them: ai-runner's envelope and the bare form.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blameOf, failureOf, LiveFailure } from '../../src/live/cause.ts';
import {
  coalesceStatus,
  MAX_EVENT_BYTES,
  type OrchestratorEvent,
  parseOrchestratorEvent,
  readEvents,
} from '../../src/live/orchestrator-events.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { ChainError } from '../../src/payments/chain.ts';
import { TicketParamsError } from '../../src/payments/sender.ts';
import { TrickleError } from '../../src/trickle/index.ts';

/** ai-runner's PipelineStatus as its streamer emits it (runner/live/process/status.py), enveloped. */
const aiRunnerStatus = (state: string, restarts: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    event: {
      type: 'status',
      pipeline: 'streamdiffusion',
      start_time: 1735000000000,
      state,
      last_state_update_time: 1735000001000,
      input_status: { last_input_time: 1735000002000, fps: 30 },
      inference_status: {
        last_output_time: null,
        fps: 0,
        last_params_update_time: null,
        last_params: null,
        last_params_hash: null,
        last_error_time: null,
        last_error: null,
        last_restart_time: null,
        last_restart_logs: null,
        restart_count: restarts,
        ...extra,
      },
      timestamp: 1735000003000,
    },
    queue_event_type: 'ai_stream_events',
  });

describe('parseOrchestratorEvent', () => {
  it('reads ai-runner’s enveloped status: state and restart count', () => {
    const e = parseOrchestratorEvent(aiRunnerStatus('LOADING', 2));
    expect(e).toMatchObject({ type: 'status', state: 'LOADING', restarts: 2 });
    expect(e?.event.pipeline).toBe('streamdiffusion');
  });

  it('reads the bare form the local orchestrator (and older runners) send', () => {
    const e = parseOrchestratorEvent(
      JSON.stringify({ type: 'status', state: 'ONLINE', inference_status: { segments: 4 } }),
    );
    expect(e).toMatchObject({ type: 'status', state: 'ONLINE', restarts: undefined });
  });

  it('reads restart and error events in both forms', () => {
    expect(
      parseOrchestratorEvent(
        JSON.stringify({ event: { type: 'restart', restart_count: 1 }, queue_event_type: 'x' }),
      ),
    ).toMatchObject({ type: 'restart', restarts: 1 });
    expect(
      parseOrchestratorEvent(JSON.stringify({ type: 'error', message: 'unknown effect "x"' })),
    ).toMatchObject({
      type: 'error',
      message: 'unknown effect "x"',
    });
    expect(
      parseOrchestratorEvent(JSON.stringify({ event: { type: 'error', message: 'Error updating params' } })),
    ).toMatchObject({ type: 'error', message: 'Error updating params' });
  });

  it('keeps other events as other, and refuses what is not a JSON object', () => {
    expect(
      parseOrchestratorEvent(JSON.stringify({ type: 'runner_send_first_processed_segment' })),
    ).toMatchObject({
      type: 'other',
      eventType: 'runner_send_first_processed_segment',
    });
    expect(parseOrchestratorEvent(JSON.stringify({ nothing: 1 }))).toMatchObject({
      type: 'other',
      eventType: 'unknown',
    });
    expect(parseOrchestratorEvent('not json')).toBeUndefined();
    expect(parseOrchestratorEvent('[1,2]')).toBeUndefined();
    expect(parseOrchestratorEvent('null')).toBeUndefined();
    // An envelope whose event is not an object is read as a bare event, as go-livepeer does.
    expect(
      parseOrchestratorEvent(JSON.stringify({ event: 'x', type: 'status', state: 'ONLINE' })),
    ).toMatchObject({
      type: 'status',
      state: 'ONLINE',
    });
  });

  it('ignores a restart count that is not a count', () => {
    expect(parseOrchestratorEvent(aiRunnerStatus('ONLINE', -1))).toMatchObject({ restarts: undefined });
  });
});

describe('readEvents', () => {
  it('reads one message at a time, dropping (unread) any over the cap and any that is not an object', async () => {
    let pulled = 0;
    /** 64 KiB chunks without end: an orchestrator spamming one huge event. */
    const endless = new Readable({
      read() {
        pulled++;
        this.push(Buffer.alloc(64 * 1024, 0x20));
      },
    });
    const bodies = [
      endless,
      Readable.from([Buffer.from('not json')]),
      Readable.from([Buffer.from(aiRunnerStatus('ONLINE', 0))]),
    ];
    const events: OrchestratorEvent[] = [];
    const dropped: string[] = [];
    let seq = 0;
    await readEvents(
      { next: async () => (bodies.length ? { seq: seq++, body: bodies.shift() as Readable } : null) },
      { event: (e) => events.push(e), dropped: (why, n) => dropped.push(`${n}:${why}`), closed: () => false },
    );
    expect(dropped).toEqual(['0:too-large', '1:not-an-object']);
    expect(events.map((e) => e.type)).toEqual(['status']);
    // Read no further than the cap (plus what the stream had buffered), then let go.
    expect(pulled * 64 * 1024).toBeLessThan(MAX_EVENT_BYTES + 20 * 64 * 1024);
    expect(endless.destroyed).toBe(true);
  });

  it('stops when the job is closed', async () => {
    let closed = false;
    const events: OrchestratorEvent[] = [];
    await readEvents(
      {
        next: async () => {
          closed = true;
          return { seq: 0, body: Readable.from([Buffer.from(aiRunnerStatus('ONLINE', 0))]) };
        },
      },
      { event: (e) => events.push(e), dropped: () => {}, closed: () => closed },
    );
    expect(events).toEqual([]);
  });
});

describe('coalesceStatus', () => {
  it('keeps the restart logs and params ai-runner sends once, as go-livepeer does', () => {
    const first = parseOrchestratorEvent(
      aiRunnerStatus('ONLINE', 1, { last_restart_logs: ['oom'], last_params: { prompt: 'cat' } }),
    );
    const second = parseOrchestratorEvent(aiRunnerStatus('ONLINE', 1));
    if (first?.type !== 'status' || second?.type !== 'status') throw new Error('not status');
    const shown = coalesceStatus(coalesceStatus(null, first.event), second.event);
    expect(shown.inference_status).toMatchObject({
      last_restart_logs: ['oom'],
      last_params: { prompt: 'cat' },
    });
    expect(shown.timestamp).toBe(1735000003000);
  });
});

describe('blame', () => {
  it('is read from the error’s type, never its text', () => {
    expect(blameOf(new OrchestratorError('refused', 'https://o', 'HTTP 500'), 'gateway')).toBe(
      'orchestrator',
    );
    expect(blameOf(new OrchestratorError('unreachable', 'https://o', 'ECONNREFUSED'), 'gateway')).toBe(
      'network',
    );
    expect(blameOf(new TrickleError('network', 'reset'), 'gateway')).toBe('network');
    expect(blameOf(new TrickleError('not-found', 'gone', 404), 'gateway')).toBe('orchestrator');
    expect(blameOf(new ChainError('unreachable', 'rpc down'), 'orchestrator')).toBe('gateway');
    expect(blameOf(new TicketParamsError('no-deposit', 'no deposit'), 'orchestrator')).toBe('gateway');
    expect(blameOf(new TicketParamsError('face-value-too-high', 'too high'), 'gateway')).toBe('orchestrator');
    expect(blameOf(new Error('the TicketBroker deposit is low'), 'orchestrator')).toBe('orchestrator');
    expect(blameOf(new LiveFailure({ blame: 'client', code: 'input', message: 'x' }), 'orchestrator')).toBe(
      'client',
    );
  });

  it('an OrchestratorError names its orchestrator in a field, not in the message', () => {
    const err = new OrchestratorError('refused', 'https://o.example:8935', 'insufficient capacity', 503);
    expect(err.message).toBe('insufficient capacity');
    expect(
      failureOf(err, 'job-start', {
        orchestrator: err.orchestrator,
        fallback: 'gateway',
        prefix: 'job start failed',
      }),
    ).toEqual({
      blame: 'orchestrator',
      code: 'job-start',
      message: 'job start failed: insufficient capacity',
      orchestrator: 'https://o.example:8935',
      details: { kind: 'refused', status: 503 },
    });
  });
});
