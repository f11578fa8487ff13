// One live-video-to-video job: reads MPEG-TS segments from the publish channel, runs the
// current effect on each, writes the result to the -out channel, takes new params from
// the -control channel and reports on the -events channel. It reaches its channels over
// HTTP, as a model runner beside a go-livepeer orchestrator does.
import type { Logger } from 'pino';
import { formatFault, type OrchestratorFault } from '../config/fault.ts';
import { type SegmentWriter, TricklePublisher, TrickleSubscriber } from '../trickle/index.ts';
import { type EffectRun, isEffect, prepareEffect, type SegmentSink } from './effects.ts';

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
   * For tests and demos: `stall-output-after`, `events-error-after` and `warmup` take effect
   * here, counted from start(); other kinds are the server's business and are ignored.
   */
  fault?: OrchestratorFault;
}

export interface LiveJobStatus {
  manifestId: string;
  modelId: string;
  effect: string;
  segmentsIn: number;
  segmentsOut: number;
  lastError?: string;
}

export class LiveJob {
  private effect: string;
  private lastParams: Record<string, unknown>;
  private warm?: EffectRun;
  private segmentsIn = 0;
  private segmentsOut = 0;
  private lastInputAt = Date.now();
  private lastError?: string;
  private ended = false;
  /** An injected fault hit: no more output bytes nor events, but input is still read. */
  private halted = false;
  /** The `warmup` fault: LOADING until then, input read and dropped. */
  private loadingUntil?: number;
  private readonly input: TrickleSubscriber;
  private readonly output: TricklePublisher;
  private readonly control: TrickleSubscriber;
  private readonly events: TricklePublisher;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: LiveJobOptions) {
    const base = `${opts.trickleBase}${opts.manifestId}`;
    const tls = { rejectUnauthorized: false };
    this.input = new TrickleSubscriber(base, { ...tls, logger: opts.logger });
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
  }

  start(): void {
    this.warm = prepareEffect(this.effect);
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
    } else if (fault?.kind === 'warmup' && fault.afterMs > 0) {
      this.loadingUntil = Date.now() + fault.afterMs;
      this.timers.push(
        setTimeout(() => {
          this.loadingUntil = undefined;
          this.opts.logger.info({ manifestId: this.opts.manifestId }, 'warm-up done');
          this.reportStatus();
        }, fault.afterMs),
      );
    }
    this.reportStatus();
  }

  status(): LiveJobStatus {
    return {
      manifestId: this.opts.manifestId,
      modelId: this.opts.modelId,
      effect: this.effect,
      segmentsIn: this.segmentsIn,
      segmentsOut: this.segmentsOut,
      lastError: this.lastError,
    };
  }

  stop(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearInterval(t);
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
        if (this.halted || this.loadingUntil !== undefined) {
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
      write: (chunk) => (this.halted ? true : out.write(chunk)),
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

  // Use the process started ahead for this effect, and start the next one.
  private takeEffectRun(): EffectRun {
    let run = this.warm;
    if (!run || run.effect !== this.effect) {
      run?.cancel();
      run = prepareEffect(this.effect);
    }
    this.warm = prepareEffect(this.effect);
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
      this.warm = prepareEffect(requested);
    }
    this.reportStatus();
  }

  private fail(message: string): void {
    this.lastError = message;
    this.opts.logger.warn({ manifestId: this.opts.manifestId }, message);
    this.sendEvent({ type: 'error', message, timestamp: Date.now() });
  }

  private reportStatus(): void {
    this.sendEvent({
      type: 'status',
      pipeline: 'live-video-to-video',
      model_id: this.opts.modelId,
      request_id: this.opts.manifestId,
      timestamp: Date.now(),
      state: this.ended ? 'OFFLINE' : this.loadingUntil !== undefined ? 'LOADING' : 'ONLINE',
      input_status: { last_input_time: this.lastInputAt, segments: this.segmentsIn },
      inference_status: {
        effect: this.effect,
        last_params: this.lastParams,
        segments: this.segmentsOut,
        last_error: this.lastError ?? null,
      },
    });
  }

  private sendEvent(event: Record<string, unknown>): void {
    if (this.ended || this.halted) return;
    this.events.writeSegment(JSON.stringify(event)).catch((err: Error) => {
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
