// The part of a live stream that belongs to one orchestrator: the job, and its four trickle
// channels (input, output, control, events). Swapping orchestrators replaces only this.
import type { Logger } from 'pino';
import { liveJobCapabilities } from '../orchestrators/capabilities.ts';
import { type LiveJobUrls, startLiveVideoToVideo } from '../orchestrators/live-video.ts';
import type { SelectedOrchestrator } from '../orchestrators/select.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials } from '../payments/credentials.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { add } from '../payments/rational.ts';
import {
  type SegmentWriter,
  TricklePublisher,
  type TrickleSegment,
  TrickleSubscriber,
} from '../trickle/index.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import { type Failure, failureOf } from './cause.ts';
import {
  LIVE_START_PIXELS,
  LivePayer,
  LivePayments,
  newTally,
  type PaymentTally,
  retryStartPixels,
} from './live-payer.ts';
import { MAX_EVENT_BYTES, type OrchestratorEvent, readEvents } from './orchestrator-events.ts';
import type { JobPayments, LivePaymentBackend, MadePayment } from './payment-backend.ts';

/** go-livepeer's gateway keeps the control channel alive this often. */
const CONTROL_KEEPALIVE_MS = 10_000;

export interface OrchestratorSessionOptions {
  orchestrator: SelectedOrchestrator;
  identity: GatewayIdentity;
  modelId: string;
  params: Record<string, unknown>;
  streamName: string;
  requestId: string;
  logger: Logger;
  onOutputSegment: (segment: TrickleSegment) => Promise<void>;
  /** Each events-channel message (both ai-runner's envelope and the bare form). */
  onEvent: (event: OrchestratorEvent) => void;
  /** The job broke (a channel closed, failed or was refused): it will not recover. */
  onFailure: (failure: Failure) => void;
  /** A live payment failed for good; the job may run on until its prepaid credit is spent. */
  onPaymentFailure?: (failure: Failure) => void;
  /** An input segment reached the orchestrator whole (for the stream's trace events). */
  onInputSegmentSent?: (seq: number) => void;
  /** The stream id the job is started with (go-livepeer's `stream_id`); default: streamName. */
  streamId?: string;
  /**
   * Prepay 60 s at the start (go-livepeer's initPixelsToPay). False for another job on an
   * orchestrator this stream already prepaid: only enough to carry it until payments flow.
   */
  prepay?: boolean;
  /** How jobs are paid (the gateway's account, or a remote signer); absent: off-chain. */
  payments?: LivePaymentBackend;
  /** What this stream paid the orchestrator (created on first use). */
  tally?: (orchestrator: string) => PaymentTally;
  /** A fresh GetOrchestrator for this job from `url`, for payments (expired params, auth token). */
  refreshInfo?: (url: string) => Promise<OrchestratorInfo>;
  /** Why `info`'s price is above the ceiling for this job, or undefined. */
  refusePrice?: (info: OrchestratorInfo) => string | undefined;
}

export class OrchestratorSession {
  private readonly input: TricklePublisher;
  private readonly output: TrickleSubscriber;
  private readonly control: TricklePublisher;
  private readonly events: TrickleSubscriber;
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;
  private payer?: LivePayer;

  private constructor(
    readonly urls: LiveJobUrls,
    private readonly opts: OrchestratorSessionOptions,
  ) {
    const tls = { rejectUnauthorized: false, logger: opts.logger };
    this.input = new TricklePublisher(urls.publishUrl, {
      ...tls,
      mimeType: 'video/MP2T',
      onSegmentFailed: (seq, err) => this.fail(err, 'input', `input segment ${seq}`),
    });
    // Sequence 0 of the job's fresh output channel, not the live edge (-1): a first segment that
    // starts before this GET arrives is still read from its first byte (its keyframe).
    this.output = new TrickleSubscriber(urls.subscribeUrl, { ...tls, start: 0 });
    this.control = new TricklePublisher(urls.controlUrl, { ...tls, mimeType: 'application/json' });
    this.events = new TrickleSubscriber(urls.eventsUrl, tls);
    // A failed keepalive is already reported through onError.
    this.keepalive = setInterval(
      () => this.sendControl({ keep: 'alive' }).catch(() => {}),
      CONTROL_KEEPALIVE_MS,
    );
    void this.readOutput();
    void this.readEvents();
  }

  static async start(opts: OrchestratorSessionOptions): Promise<OrchestratorSession> {
    const { info, url } = opts.orchestrator;
    const transcoder = info.transcoder ?? url;
    const backend = opts.payments;
    const identity = backend?.identity ?? opts.identity;
    const capabilities = liveJobCapabilities(opts.modelId);
    let payment = backend ? backend.freePayment(info) : OFFCHAIN_PAYMENT;
    let segment: string | undefined;
    let paid: { job: JobPayments; made: MadePayment; pixels: bigint } | undefined;
    if (backend && LivePayments.pays(info)) {
      const refresh =
        opts.refreshInfo && (() => (opts.refreshInfo as (u: string) => Promise<OrchestratorInfo>)(url));
      const job = backend.openJob(url, info, { capabilities, refresh });
      // 60 s; another job on an orchestrator this stream already prepaid gets only enough to run
      // until payments flow.
      const full = opts.prepay !== false;
      const pixels = full ? LIVE_START_PIXELS : retryStartPixels(backend.intervalMs);
      const made = await job.start({ pixels, full, manifestId: opts.requestId });
      payment = made.payment;
      segment = made.segment;
      paid = { job, made, pixels };
    }
    let urls: LiveJobUrls;
    try {
      urls = await startLiveVideoToVideo(transcoder, {
        modelId: opts.modelId,
        params: opts.params,
        streamId: opts.streamId || opts.streamName,
        requestId: opts.requestId,
        payment,
        // The job's capabilities, as go-livepeer's genSegCreds sends them: the orchestrator prices
        // its replies for them (the model's price, not the transcoding one).
        segment:
          segment ?? (await segmentCredentials(info, identity, { manifestId: opts.requestId, capabilities })),
      });
    } catch (err) {
      paid?.made.settle('refused');
      if (paid && opts.tally) opts.tally(url).lastError = (err as Error).message;
      throw err;
    }
    paid?.made.settle('delivered');
    opts.logger.info(
      {
        orchestrator: url,
        manifestId: urls.manifestId,
        paid: paid?.made.tickets ?? 0,
        prepay: opts.prepay !== false,
      },
      'live job started',
    );
    const session = new OrchestratorSession(urls, opts);
    if (backend && paid) {
      const tally = opts.tally?.(url) ?? newTally();
      tally.tickets += paid.made.tickets;
      tally.paid = add(tally.paid, paid.made.ev);
      session.payer = new LivePayer({
        job: paid.job,
        intervalMs: backend.intervalMs,
        transcoder,
        manifestId: urls.manifestId,
        tally,
        prepaidPixels: paid.pixels,
        logger: opts.logger,
        onError: (failure) => {
          if (!session.closed) (opts.onPaymentFailure ?? opts.onFailure)({ ...failure, orchestrator: url });
        },
        refresh:
          opts.refreshInfo && (() => (opts.refreshInfo as (u: string) => Promise<OrchestratorInfo>)(url)),
        refusePrice: opts.refusePrice,
      });
    }
    return session;
  }

  get orchestratorUrl(): string {
    return this.opts.orchestrator.url;
  }

  /** The orchestrator's on-chain address from its GetOrchestrator answer, if it sent one. */
  get orchestratorAddress(): Uint8Array | undefined {
    return this.opts.orchestrator.info.address;
  }

  /** Resolves once a live payment under way (if any) has finished: shutdown waits for it. */
  paymentSettled(): Promise<void> {
    return this.payer?.settled() ?? Promise.resolve();
  }

  /**
   * A new input segment; the caller writes MPEG-TS into it as frames arrive. A failed segment
   * is reported through onError (the orchestrator is in trouble), not to the caller.
   */
  startInputSegment(): SegmentWriter {
    const writer = this.input.startSegment();
    void this.payer?.onInputSegment();
    return {
      seq: writer.seq,
      write: (chunk) => writer.write(chunk),
      waitForDrain: () => writer.waitForDrain(),
      abort: () => writer.abort(),
      end: () =>
        writer.end().then(
          () => this.opts.onInputSegmentSent?.(writer.seq),
          (err: Error) => this.fail(err, 'input', `input segment ${writer.seq}`),
        ),
    };
  }

  sendControl(params: Record<string, unknown>): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.control.writeSegment(JSON.stringify(params)).catch((err: Error) => {
      // Closed by us (a swap, the stream's end) while sending: nobody's failure, and the stream
      // hands its params to the next orchestrator.
      if (this.closed) return;
      this.fail(err, 'control', 'control channel');
      throw err;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.payer?.stop();
    clearInterval(this.keepalive);
    this.output.close();
    this.events.close();
    // Deleting the input channel tells the orchestrator the stream is over.
    await Promise.allSettled([this.input.close({ deleteChannel: true }), this.control.close()]);
  }

  private async readOutput(): Promise<void> {
    try {
      for (;;) {
        const segment = await this.output.next();
        if (this.closed) return;
        if (!segment) {
          if (!this.closed) {
            this.opts.onFailure({
              blame: 'orchestrator',
              code: 'output-closed',
              message: 'output channel closed by the orchestrator',
              orchestrator: this.orchestratorUrl,
            });
          }
          return;
        }
        try {
          await this.opts.onOutputSegment(segment);
        } catch (err) {
          // A segment cut off mid-way: the orchestrator (or the path to it) went away while sending it.
          this.fail(err, 'output', `output segment ${segment.seq}`);
          return;
        }
      }
    } catch (err) {
      this.fail(err, 'output', 'output channel');
    }
  }

  /** Reports the job broken, with who is to blame read from the error's type. */
  private fail(err: unknown, code: Failure['code'], where: string): void {
    if (this.closed) return;
    this.opts.onFailure(
      failureOf(err, code, { orchestrator: this.orchestratorUrl, fallback: 'network', prefix: where }),
    );
  }

  /** Messages dropped for their size or form. */
  eventsDropped = 0;

  private async readEvents(): Promise<void> {
    try {
      await readEvents(this.events, {
        event: (event) => this.opts.onEvent(event),
        dropped: (why, seq) => {
          if (this.eventsDropped++ > 0) return; // said once per job
          this.opts.logger.warn(
            { orchestrator: this.orchestratorUrl, seq, why },
            why === 'too-large'
              ? `events channel: a message over ${MAX_EVENT_BYTES} bytes, dropped`
              : 'events channel: a message that is not a JSON object, dropped',
          );
        },
        closed: () => this.closed,
      });
    } catch (err) {
      if (!this.closed) this.opts.logger.warn({ err: (err as Error).message }, 'events channel failed');
    }
  }
}
