// The part of a live stream that belongs to one orchestrator: the job, and its four trickle
// channels (input, output, control, events). Swapping orchestrators replaces only this.
import type { Logger } from 'pino';
import { liveJobCapabilities } from '../orchestrators/capabilities.ts';
import { type LiveJobUrls, startLiveVideoToVideo } from '../orchestrators/live-video.ts';
import type { SelectedOrchestrator } from '../orchestrators/select.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials, senderOnlyPayment } from '../payments/credentials.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { add, mul, type Rational, rat } from '../payments/rational.ts';
import type { TicketSender } from '../payments/sender.ts';
import {
  type SegmentWriter,
  TricklePublisher,
  type TrickleSegment,
  TrickleSubscriber,
} from '../trickle/index.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import { LIVE_START_PIXELS, LivePayer, LivePayments, newTally, type PaymentTally } from './live-payer.ts';

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
  onEvent: (event: Record<string, unknown>) => void;
  onError: (reason: string) => void;
  /** The gateway's payment account; absent: off-chain. */
  payments?: LivePayments;
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
      onSegmentFailed: (seq, err) => {
        if (!this.closed) this.opts.onError(`input segment ${seq}: ${err.message}`);
      },
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
    const payments = opts.payments && LivePayments.pays(info) ? opts.payments : undefined;
    const identity = opts.payments?.identity ?? opts.identity;
    // On chain a free orchestrator still learns who signed the segment credentials.
    let payment = opts.payments
      ? senderOnlyPayment(opts.payments.identity.address, info.priceInfo)
      : OFFCHAIN_PAYMENT;
    let paid: { sender: TicketSender; tickets: number; ev: Rational; price: Rational } | undefined;
    if (payments) {
      // Prepay 60 s (at least one ticket), signed by the paying account.
      const validate = await payments.validateOptions();
      const sender = payments.senderFor(url, info);
      // The orchestrator bills the job at this payment's expected price for its whole life; the
      // shared sender's price may move with other streams' replies later.
      const price = sender.price;
      const p = await sender.createPayment(mul(rat(LIVE_START_PIXELS), price), { validate });
      payment = p.header;
      paid = { sender, tickets: p.numTickets, ev: p.ev, price };
    }
    let urls: LiveJobUrls;
    try {
      urls = await startLiveVideoToVideo(transcoder, {
        modelId: opts.modelId,
        params: opts.params,
        streamId: opts.streamName,
        requestId: opts.requestId,
        payment,
        // The job's capabilities, as go-livepeer's genSegCreds sends them: the orchestrator prices
        // its replies for them (the model's price, not the transcoding one).
        segment: await segmentCredentials(info, identity, {
          manifestId: opts.requestId,
          capabilities: liveJobCapabilities(opts.modelId),
        }),
      });
    } catch (err) {
      if (paid && opts.tally) opts.tally(url).lastError = (err as Error).message;
      throw err;
    }
    opts.logger.info(
      { orchestrator: url, manifestId: urls.manifestId, paid: paid?.tickets ?? 0 },
      'live job started',
    );
    const session = new OrchestratorSession(urls, opts);
    if (payments && paid) {
      const tally = opts.tally?.(url) ?? newTally();
      tally.tickets += paid.tickets;
      tally.paid = add(tally.paid, paid.ev);
      session.payer = new LivePayer({
        payments,
        sender: paid.sender,
        transcoder,
        info,
        manifestId: urls.manifestId,
        price: paid.price,
        capabilities: liveJobCapabilities(opts.modelId),
        tally,
        logger: opts.logger,
        onError: (reason) => {
          if (!session.closed) opts.onError(reason);
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
        writer.end().catch((err: Error) => {
          if (!this.closed) this.opts.onError(`input segment ${writer.seq}: ${err.message}`);
        }),
    };
  }

  sendControl(params: Record<string, unknown>): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.control.writeSegment(JSON.stringify(params)).catch((err: Error) => {
      if (!this.closed) this.opts.onError(`control channel: ${err.message}`);
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
          this.opts.onError('output channel closed by the orchestrator');
          return;
        }
        try {
          await this.opts.onOutputSegment(segment);
        } catch (err) {
          // A segment cut off mid-way: the orchestrator went away while sending it.
          if (!this.closed) this.opts.onError(`output segment ${segment.seq}: ${(err as Error).message}`);
          return;
        }
      }
    } catch (err) {
      if (!this.closed) this.opts.onError(`output channel: ${(err as Error).message}`);
    }
  }

  private async readEvents(): Promise<void> {
    try {
      for (;;) {
        const segment = await this.events.next();
        if (this.closed || !segment) return;
        const chunks: Buffer[] = [];
        for await (const c of segment.body) chunks.push(c as Buffer);
        try {
          const event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (event && typeof event === 'object') this.opts.onEvent(event);
        } catch {
          this.opts.logger.debug('events channel: a message that is not JSON');
        }
      }
    } catch (err) {
      if (!this.closed) this.opts.logger.warn({ err: (err as Error).message }, 'events channel failed');
    }
  }
}
