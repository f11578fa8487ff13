// How a live job is paid, whoever signs: the gateway's own account (LivePayments: TicketSender,
// the keystore key in worker threads) or a remote signer that holds the key (RemoteSignerPayments:
// the gateway holds none). The live path (OrchestratorSession, LivePayer) sees only this.
import type { GatewayIdentity } from '../payments/identity.ts';
import type { Rational } from '../payments/rational.ts';
import type { Capabilities, OrchestratorInfo } from '../wire/lp-rpc.ts';

/** go-livepeer's authTokenValidPeriod; a token is refreshed in its last tenth. */
const AUTH_TOKEN_VALID_S = 30 * 60;

export type PaymentOutcome = 'delivered' | 'refused' | 'lost';

/** One payment, ready to send: the two headers, and what it is worth. */
export interface MadePayment {
  /** Livepeer-Payment. */
  payment: string;
  /** Livepeer-Segment. */
  segment: string;
  tickets: number;
  /** tickets × EV: the credit it adds at the orchestrator. */
  ev: Rational;
  /**
   * What became of it: the orchestrator took it, refused it, or it may not have got there
   * (timeout, connection) and can be sent again as it is.
   */
  settle(outcome: PaymentOutcome): void;
}

/** One job's payments with one orchestrator. */
export interface JobPayments {
  /** The orchestrator's info as last received (auth token, ticket params, price). */
  readonly info: OrchestratorInfo;
  /** Price per pixel the job pays, fixed at its start. */
  readonly price: Rational;
  /**
   * The start's prepayment: `pixels` worth. `full`: go-livepeer's 60 s prepayment (a remote
   * signer bills it as the first `lv2v` call); otherwise exactly `pixels`.
   */
  start(opts: { pixels: bigint; full: boolean; manifestId: string }): Promise<MadePayment>;
  /** Why fresh info is needed before the next payment ('' when it is not). */
  refreshReason(force: boolean, nowMs: number): Promise<string>;
  /**
   * An interval's payment. `fee` is what the gateway's clock says is due at the job's price: the
   * local sender pays it; a remote signer bills its own clock. Null: nothing is due now (the
   * signer's credit covers it).
   */
  pay(fee: Rational, manifestId: string): Promise<MadePayment | null>;
  /** Fresh info (a PaymentResult's, or GetOrchestrator's). */
  take(fresh: OrchestratorInfo): void;
}

export interface LivePaymentBackend {
  /** Who the gateway is to orchestrators (the payer's address). */
  readonly identity: GatewayIdentity;
  /** How often running jobs are paid. */
  readonly intervalMs: number;
  /** The Livepeer-Payment for an orchestrator that charges nothing. */
  freePayment(info: OrchestratorInfo): string;
  /** The payments of a job starting on the orchestrator at `url` with `info`. */
  openJob(
    url: string,
    info: OrchestratorInfo,
    opts: { capabilities: Capabilities; refresh?: () => Promise<OrchestratorInfo> },
  ): JobPayments;
}

/** go-livepeer's shouldRefreshSession, first half: the auth token is in its last tenth. */
export function authTokenExpiring(info: OrchestratorInfo, nowMs: number): boolean {
  const expiration = info.authToken?.expiration;
  if (expiration === undefined) return false;
  return nowMs / 1000 > Number(expiration) - AUTH_TOKEN_VALID_S / 10;
}

/** Fresh info over the old: its auth token, price and ticket params where it has them. */
export function mergeInfo(old: OrchestratorInfo, fresh: OrchestratorInfo): OrchestratorInfo {
  return {
    ...old,
    ...(fresh.authToken ? { authToken: fresh.authToken } : {}),
    ...(fresh.priceInfo ? { priceInfo: fresh.priceInfo } : {}),
    ...(fresh.ticketParams ? { ticketParams: fresh.ticketParams } : {}),
  };
}
