// One live-video-to-video job: reads MPEG-TS segments from the publish channel, runs the
// current effect on each, writes the result to the -out channel, takes new params from
// the -control channel and reports on the -events channel. It reaches its channels over
// HTTP, as a model runner beside a go-livepeer orchestrator does. With a RunnerBehaviour it
// also acts like an ai-runner pipeline: it loads for a while (state LOADING, no output),
// re-sizes and re-times the picture, restarts now and then, and wraps its events
// (docs/local-orchestrator.md).
import type { Logger } from 'pino';
import { formatFault, type OrchestratorFault, PLAIN_RUNNER, type RunnerBehaviour } from '../config/fault.ts';
import { type SegmentWriter, TricklePublisher, TrickleSubscriber } from '../trickle/index.ts';
import { type EffectRun, isEffect, prepareEffect, type SegmentSink } from './effects.ts';

/** ai-runner's PipelineState values that this job takes (runner/live/process/status.py). */
export type PipelineState = 'LOADING' | 'ONLINE' | 'OFFLINE';
/** ai-runner's queue for status, restart and error events, and for its trace events. */
const STREAM_EVENTS = 'ai_stream_events';
const STREAM_TRACE = 'stream_trace';
const PIPELINE = 'live-video-to-video';

export interface LiveJobOptions {
  manifestId: string;
  /** `https://host:port/ai/trickle/` */
  trickleBase: string;
  modelId: string;
  params: Record<string, unknown>;
  statusIntervalMs: number;
  /** The job ends when no input segment starts for this long. */
  inputTimeoutMs: number;
  /** Each input segment as it starts: the orchestrator's live accounting runs on these. */
  onInputSegment?: () => void;
  logger: Logger;
  onEnd: (reason: string) => void;
  /**
   * For tests and demos: `stall-output-after` and `events-error-after` take effect
   * here, counted from start(); other kinds are the server's business and are ignored.
   */
  fault?: OrchestratorFault;
  /** For tests and demos: behave like an ai-runner pipeline (warm-up, size, rate, restarts, envelope). */
  runner?: RunnerBehaviour;
}

export interface LiveJobStatus {
  manifestId: string;
  modelId: string;
  effect: string;
  state: PipelineState;
  segmentsIn: number;
  segmentsOut: number;
  restartCount: number;
  lastError?: string;
}

export class LiveJob {
  private effect: string;
  private lastParams: Record<string, unknown>;
  private warm?: EffectRun;
  private segmentsIn = 0;
  private segmentsOut = 0;
  private lastInputAt = Date.now();
  private lastOutputAt?: number;
  private lastError?: string;
  private lastErrorAt?: number;
  private ended = false;
  private readonly runner: RunnerBehaviour;
  private state: PipelineState = 'ONLINE';
  private startedAt = Date.now();
  private stateSince = Date.now();
  /** While loading (warm-up or a restart), input is read and dropped: no output until then. */
  private loadingUntil = 0;
  private onlineTimer?: NodeJS.Timeout;
  private restartCount = 0;
  private lastRestartAt?: number;
  private traced = { input: false, output: false };
  /** An injected fault hit: no more output bytes nor events, but input is still read. */
  private halted = false;
  private readonly input: TrickleSubscriber;
  private readonly output: TricklePublisher;
  private readonly control: TrickleSubscriber;
  private readonly events: TricklePublisher;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: LiveJobOptions) {
    const base = `${opts.trickleBase}${opts.manifestId}`;
    const tls = { rejectUnauthorized: false };
    // Sequence 0 of the fresh input channel (as ai-runner's -2 resolves on a new channel), not the
    // live edge: the gateway may send its first segment, with the keyframe, before this GET arrives.
    this.input = new TrickleSubscriber(base, { ...tls, logger: opts.logger, start: 0 });
    this.output = new TricklePublisher(`${base}-out`, {
      ...tls,
      mimeType: 'video/MP2T',
      logger: opts.logger,
    });
    this.control = new TrickleSubscriber(`${base}-control`, { ...tls, logger: opts.logger });
    this.events = new TricklePublisher(`${base}-events`, {
      ...tls,
      mimeType: 'application/json',
      logger: opts.logger,
    });
    this.lastParams = opts.params;
    this.effect = effectFrom(opts.params) ?? opts.modelId;
    this.runner = opts.runner ?? PLAIN_RUNNER;
  }

  start(): void {
    this.startedAt = Date.now();
    if (this.runner.warmupMs > 0) this.load(this.runner.warmupMs);
    this.warm = this.prepare(this.effect);
    void this.processInput();
    void this.readControl();
    this.timers.push(setInterval(() => this.reportStatus(), this.opts.statusIntervalMs));
    this.timers.push(
      setInterval(() => {
        if (Date.now() - this.lastInputAt > this.opts.inputTimeoutMs) this.stop('no input');
      }, 1000),
    );
    const fault = this.opts.fault;
    if (fault?.kind === 'stall-output-after' || fault?.kind === 'events-error-after') {
      this.timers.push(setTimeout(() => this.injectFault(fault), fault.afterMs));
    }
    const restarts = this.runner.restarts;
    if (restarts.kind === 'after') this.timers.push(setTimeout(() => this.restart(), restarts.ms));
    if (restarts.kind === 'every') this.timers.push(setInterval(() => this.restart(), restarts.ms));
    this.reportStatus();
  }

  status(): LiveJobStatus {
    return {
      manifestId: this.opts.manifestId,
      modelId: this.opts.modelId,
      effect: this.effect,
      state: this.state,
      segmentsIn: this.segmentsIn,
      segmentsOut: this.segmentsOut,
      restartCount: this.restartCount,
      lastError: this.lastError,
    };
  }

  stop(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.state = 'OFFLINE';
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.onlineTimer);
    this.warm?.cancel();
    this.input.close();
    this.control.close();
    void this.output.close();
    void this.events.close();
    this.opts.logger.info({ reason, ...this.status() }, 'live job ended');
    this.opts.onEnd(reason);
  }

  private async processInput(): Promise<void> {
    try {
      for (;;) {
        const segment = await this.input.next();
        if (!segment || this.ended) break;
        this.segmentsIn++;
        this.opts.onInputSegment?.();
        this.lastInputAt = Date.now();
        this.trace('input');
        if (this.halted || this.state === 'LOADING') {
          // A hung or loading model: its input is still read (and dropped), nothing comes out.
          for await (const _ of segment.body) this.lastInputAt = Date.now();
          continue;
        }
        const run = this.takeEffectRun();
        const out = this.haltable(this.output.startSegment());
        try {
          await run.run(segment.body, out);
          if (!this.halted) this.segmentsOut++;
        } catch (err) {
          this.fail(`segment ${segment.seq}: ${(err as Error).message}`);
        }
      }
      this.stop('input channel closed');
    } catch (err) {
      this.fail(`input: ${(err as Error).message}`);
      this.stop('input failed');
    }
  }

  /**
   * The output segment as the effect sees it. Once halted, bytes are dropped and the segment is
   * left open, as a hung model leaves it; end() resolves anyway so the input keeps being read.
   */
  private haltable(out: SegmentWriter): SegmentSink {
    return {
      write: (chunk) => {
        if (this.halted) return true;
        this.lastOutputAt = Date.now();
        this.trace('output');
        return out.write(chunk);
      },
      end: () => (this.halted ? Promise.resolve() : out.end()),
      abort: () => {
        if (!this.halted) out.abort();
      },
    };
  }

  private injectFault(fault: OrchestratorFault): void {
    if (this.ended || this.halted) return;
    const what = formatFault(fault);
    if (fault.kind === 'events-error-after') {
      const message = `live-video-to-video runner failed: injected fault ${what}`;
      this.lastError = message;
      this.sendEvent({ type: 'error', message, timestamp: Date.now() });
    }
    this.halted = true;
    this.opts.logger.warn(
      { manifestId: this.opts.manifestId, fault: what },
      'injected fault: output and status events stop',
    );
  }

  /**
   * LOADING for `ms` (a model loading, or a pipeline restarting): input segments that start
   * meanwhile are dropped, then ONLINE. Overlapping loads end at the later end.
   */
  private load(ms: number): void {
    const until = Date.now() + ms;
    if (until <= this.loadingUntil) return;
    this.loadingUntil = until;
    this.setState('LOADING');
    clearTimeout(this.onlineTimer);
    this.onlineTimer = setTimeout(() => {
      if (!this.ended) this.setState('ONLINE');
    }, ms);
  }

  /** An ai-runner pipeline process restart: output stops for restartGap, restart_count + 1. */
  private restart(): void {
    if (this.ended || this.halted) return;
    this.restartCount++;
    this.lastRestartAt = Date.now();
    this.opts.logger.info(
      { manifestId: this.opts.manifestId, restartCount: this.restartCount },
      'pipeline restart (ai-runner-like behaviour)',
    );
    this.sendEvent({
      type: 'restart',
      pipeline: PIPELINE,
      restart_count: this.restartCount,
      restart_time: this.lastRestartAt,
      restart_logs: [],
      timestamp: this.lastRestartAt,
    });
    this.load(this.runner.restartGapMs);
  }

  private setState(state: PipelineState): void {
    if (state === this.state) return;
    this.state = state;
    this.stateSince = Date.now();
    // ai-runner only reports every 10 s; reporting a change at once lets a test see it promptly.
    this.reportStatus();
  }

  /** ai-runner's first-segment trace events (envelope form only; the plain form has none). */
  private trace(what: 'input' | 'output'): void {
    if (this.traced[what] || this.runner.eventForm !== 'envelope') return;
    this.traced[what] = true;
    const type =
      what === 'input' ? 'runner_receive_first_ingest_segment' : 'runner_send_first_processed_segment';
    this.sendEvent({ type, timestamp: Date.now() }, STREAM_TRACE);
  }

  private prepare(effect: string): EffectRun {
    return prepareEffect(effect, { size: this.runner.outputSize, fps: this.runner.outputFps });
  }

  // Use the process started ahead for this effect, and start the next one.
  private takeEffectRun(): EffectRun {
    let run = this.warm;
    if (!run || run.effect !== this.effect) {
      run?.cancel();
      run = this.prepare(this.effect);
    }
    this.warm = this.prepare(this.effect);
    return run;
  }

  private async readControl(): Promise<void> {
    try {
      for (;;) {
        const segment = await this.control.next();
        if (!segment || this.ended) return;
        const text = await readAll(segment.body);
        this.applyControl(text);
      }
    } catch (err) {
      if (!this.ended) this.fail(`control: ${(err as Error).message}`);
    }
  }

  private applyControl(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.fail(`control message is not JSON: ${text.slice(0, 80)}`);
      return;
    }
    if (!message || typeof message !== 'object' || Array.isArray(message)) return;
    const params = message as Record<string, unknown>;
    if ('keep' in params && Object.keys(params).length === 1) return; // keepalive
    const requested = effectFrom(params);
    if (params.effect !== undefined && !requested) {
      this.fail(`unknown effect ${JSON.stringify(params.effect)}`);
      return;
    }
    this.lastParams = params;
    if (requested && requested !== this.effect) {
      this.opts.logger.info(
        { manifestId: this.opts.manifestId, from: this.effect, to: requested },
        'effect changed',
      );
      this.effect = requested;
      this.warm?.cancel();
      this.warm = this.prepare(requested);
    }
    this.reportStatus();
  }

  private fail(message: string): void {
    this.lastError = message;
    this.lastErrorAt = Date.now();
    this.opts.logger.warn({ manifestId: this.opts.manifestId }, message);
    this.sendEvent({
      type: 'error',
      pipeline: PIPELINE,
      message,
      time: this.lastErrorAt,
      timestamp: this.lastErrorAt,
    });
  }

  /** ai-runner's PipelineStatus fields (times in ms), with this job's own counters beside them. */
  private reportStatus(): void {
    this.sendEvent({
      type: 'status',
      pipeline: PIPELINE,
      model_id: this.opts.modelId,
      request_id: this.opts.manifestId,
      timestamp: Date.now(),
      start_time: this.startedAt,
      state: this.ended ? 'OFFLINE' : this.state,
      last_state_update_time: this.stateSince,
      input_status: { last_input_time: this.lastInputAt, segments: this.segmentsIn },
      inference_status: {
        effect: this.effect,
        last_params: this.lastParams,
        segments: this.segmentsOut,
        last_output_time: this.lastOutputAt ?? null,
        last_error: this.lastError ?? null,
        last_error_time: this.lastErrorAt ?? null,
        restart_count: this.restartCount,
        last_restart_time: this.lastRestartAt ?? null,
      },
    });
  }

  /** Plain (`{"type": ...}`) or, as ai-runner sends it, `{"event": {...}, "queue_event_type": ...}`. */
  private sendEvent(event: Record<string, unknown>, queue = STREAM_EVENTS): void {
    if (this.ended || this.halted) return;
    const body = this.runner.eventForm === 'envelope' ? { event, queue_event_type: queue } : event;
    this.events.writeSegment(JSON.stringify(body)).catch((err: Error) => {
      this.opts.logger.debug({ manifestId: this.opts.manifestId, err: err.message }, 'event not delivered');
    });
  }
}

function effectFrom(params: Record<string, unknown>): string | undefined {
  const effect = params.effect;
  return isEffect(effect) ? effect : undefined;
}

async function readAll(body: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
