// Live payments through a remote signer (go-livepeer's remotePaymentSender, server/live_payment.go):
// the gateway holds no key. For each payment it sends the orchestrator's latest info and the
// job's payment state to the signer, which answers with the Livepeer-Payment and Livepeer-Segment
// headers and the next state. The state (a signed blob, opaque here) carries the job's nonces and
// credit, so nothing of them lives in this process: another gateway node holding the blob could
// carry on from it.
import type { Logger } from 'pino';
import { OFFCHAIN_PAYMENT } from '../payments/credentials.ts';
import { type GatewayIdentity, remoteIdentity } from '../payments/identity.ts';
import { mul, type Rational, rat, ZERO } from '../payments/rational.ts';
import { priceOf } from '../payments/sender.ts';
import { bytesToBigint, ticketEV } from '../payments/ticket.ts';
import { type RemoteSignerClient, RemoteSignerError } from '../signer/client.ts';
import { STATUS_REFRESH_SESSION } from '../signer/protocol.ts';
import type { SignedState } from '../signer/state.ts';
import { type Capabilities, decodeMessage, encodeMessage, type OrchestratorInfo } from '../wire/lp-rpc.ts';
import {
  authTokenExpiring,
  type JobPayments,
  type LivePaymentBackend,
  type MadePayment,
  mergeInfo,
} from './payment-backend.ts';

/** go-livepeer's gateway gives up after this many session refreshes (480) in one payment. */
const MAX_REFRESHES = 3;

export interface RemoteSignerPaymentsOptions {
  client: RemoteSignerClient;
  /** How often running jobs are paid (-livePaymentInterval). */
  intervalMs: number;
  logger: Logger;
}

export class RemoteSignerPayments implements LivePaymentBackend {
  readonly intervalMs: number;

  private constructor(
    private readonly opts: RemoteSignerPaymentsOptions,
    readonly identity: GatewayIdentity,
  ) {
    this.intervalMs = opts.intervalMs;
  }

  /** Asks the signer who it is (go-livepeer's gateway does this at start, and exits when it fails). */
  static async connect(opts: RemoteSignerPaymentsOptions): Promise<RemoteSignerPayments> {
    const { address, signature } = await opts.client.orchestratorInfo();
    return new RemoteSignerPayments(opts, remoteIdentity(address, signature));
  }

  /** Nothing to sign with here: an orchestrator that charges nothing gets go-livepeer's off-chain payment. */
  freePayment(): string {
    return OFFCHAIN_PAYMENT;
  }

  openJob(
    _url: string,
    info: OrchestratorInfo,
    opts: { capabilities: Capabilities; refresh?: () => Promise<OrchestratorInfo> },
  ): JobPayments {
    return new RemoteJobPayments(this.opts.client, info, opts.capabilities, opts.refresh, this.opts.logger);
  }
}

/** One job's payments through the signer; its state is the last one the signer returned. */
export class RemoteJobPayments implements JobPayments {
  readonly price: Rational;
  info: OrchestratorInfo;
  /** The signer's state for this job; undefined until the first payment. */
  state?: SignedState;
  /** A payment made but not delivered (timeout, connection): sent again before asking for more. */
  private unsent?: MadePayment;

  constructor(
    private readonly client: RemoteSignerClient,
    info: OrchestratorInfo,
    private readonly capabilities: Capabilities,
    private readonly refresh: (() => Promise<OrchestratorInfo>) | undefined,
    private readonly logger: Logger,
  ) {
    this.info = info;
    // The signer fixes the session's price at its first call: this one.
    this.price = priceOf(info.priceInfo);
  }

  async start(opts: { pixels: bigint; full: boolean; manifestId: string }): Promise<MadePayment> {
    // The full start is go-livepeer's first lv2v call (the signer bills 60 s); a shorter one
    // bills exactly its pixels (type "" with inPixels), and later calls continue as lv2v.
    const made = await this.call(opts.full ? 'lv2v' : '', opts.full ? 0n : opts.pixels, opts.manifestId);
    if (!made) {
      throw new RemoteSignerError(
        'refused',
        'remote signer made no start payment (482: no tickets needed)',
        482,
      );
    }
    return made;
  }

  async refreshReason(force: boolean, nowMs: number): Promise<string> {
    if (force) return 'the orchestrator refused the ticket params';
    // Expired params need the chain's block: the signer says so (480).
    return authTokenExpiring(this.info, nowMs) ? 'auth token about to expire' : '';
  }

  async pay(_fee: Rational, manifestId: string): Promise<MadePayment | null> {
    const unsent = this.unsent;
    if (unsent) {
      this.unsent = undefined;
      // Sent once more as it is: taken now, or refused as already seen (then the next call asks anew).
      return { ...unsent, settle: () => {} };
    }
    return this.call('lv2v', 0n, manifestId);
  }

  take(fresh: OrchestratorInfo): void {
    this.info = mergeInfo(this.info, fresh);
  }

  private async call(type: string, inPixels: bigint, manifestId: string): Promise<MadePayment | null> {
    for (let refreshes = 0; ; refreshes++) {
      let answer: Awaited<ReturnType<RemoteSignerClient['generateLivePayment']>>;
      try {
        answer = await this.client.generateLivePayment({
          state: this.state,
          orchestrator: encodeMessage('OrchestratorInfo', this.info),
          manifestId,
          app: '',
          inPixels,
          type,
          capabilities: encodeMessage('Capabilities', this.capabilities),
        });
      } catch (err) {
        const refresh = this.refresh;
        if (!(err instanceof RemoteSignerError && err.status === STATUS_REFRESH_SESSION && refresh))
          throw err;
        if (refreshes >= MAX_REFRESHES) {
          throw new RemoteSignerError(
            'refused',
            `remote signer asked for ${refreshes + 1} session refreshes in a row`,
            err.status,
          );
        }
        this.logger.info(
          { orchestrator: this.info.transcoder },
          'remote signer asks for fresh orchestrator info',
        );
        this.take(await refresh());
        continue;
      }
      if (answer === 'no-tickets') return null;
      // Kept at once, as go-livepeer's gateway does: the signer has moved on to this state.
      this.state = answer.state;
      const { tickets, ev } = worth(answer.payment);
      const made: MadePayment = {
        payment: answer.payment,
        segment: answer.segCreds,
        tickets,
        ev,
        settle: (outcome) => {
          this.unsent = outcome === 'lost' ? made : undefined;
        },
      };
      return made;
    }
  }
}

/** The tickets in a Livepeer-Payment and their EV. */
function worth(header: string): { tickets: number; ev: Rational } {
  try {
    const p = decodeMessage('Payment', Buffer.from(header, 'base64'));
    const tickets = p.ticketSenderParams?.length ?? 0;
    const tp = p.ticketParams;
    if (!tp || tickets === 0) return { tickets, ev: ZERO };
    return {
      tickets,
      ev: mul(rat(BigInt(tickets)), ticketEV(bytesToBigint(tp.faceValue), bytesToBigint(tp.winProb))),
    };
  } catch {
    throw new RemoteSignerError(
      'invalid-reply',
      'remote signer sent a payment that is not a Payment protobuf',
    );
  }
}
