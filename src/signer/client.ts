// A gateway's side of the remote signer (go-livepeer's GetOrchInfoSig and remotePaymentSender,
// server/remote_signer.go and server/live_payment.go): it works with go-livepeer's signer and ours.

import { getAddress, type Hex, hexToBytes } from 'viem';
import { readCapped } from '../http/capped-body.ts';
import type { Blame } from '../orchestrators/errors.ts';
import { GoJsonError, parseGoJson } from './go-json.ts';
import {
  encodePaymentRequest,
  ORCHESTRATOR_URL_HEADER,
  type PaymentRequest,
  type PaymentResponse,
  parsePaymentResponse,
  ROUTES,
  STATUS_NO_TICKETS,
  STATUS_PRICE_EXCEEDED,
} from './protocol.ts';

export type RemoteSignerErrorKind = 'unreachable' | 'timeout' | 'refused' | 'invalid-reply';

/** A call to the signer failed; `status` is the signer's HTTP status when it answered. */
export class RemoteSignerError extends Error {
  constructor(
    readonly kind: RemoteSignerErrorKind,
    message: string,
    readonly status?: number,
    /** With 480: where to refresh the session. */
    readonly orchestratorUrl?: string,
  ) {
    super(message);
    this.name = 'RemoteSignerError';
  }

  /** A price above the signer's ceilings is the orchestrator's; anything else is our own side's. */
  get blame(): Blame {
    return this.status === STATUS_PRICE_EXCEEDED ? 'orchestrator' : 'gateway';
  }

  /** The signer was not reached, did not answer in time, or is unavailable (503/504): try again later. */
  get transient(): boolean {
    return (
      this.kind === 'unreachable' || this.kind === 'timeout' || this.status === 503 || this.status === 504
    );
  }
}

export interface RemoteSignerClientOptions {
  /** The signer's origin; every route is an absolute path on it. */
  url: string;
  /** -remoteSignerHeaders, on every call. */
  headers?: Record<string, string>;
  /** One /generate-live-payment (go-livepeer allows 60 s; a live payment must not wait that long). */
  paymentTimeoutMs?: number;
  /** /sign-orchestrator-info (go-livepeer: 30 s). */
  infoTimeoutMs?: number;
}

const MAX_REPLY_BYTES = 1024 * 1024;

export class RemoteSignerClient {
  readonly url: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: RemoteSignerClientOptions) {
    this.url = new URL(opts.url).origin;
    this.headers = opts.headers ?? {};
  }

  /** Where the signer's discovery answers (with -remoteDiscovery on the signer). */
  get discoveryUrl(): string {
    return new URL(ROUTES.discoverOrchestrators, this.url).href;
  }

  /** The signer's address and its OrchestratorRequest signature (asked once, at start). */
  async orchestratorInfo(): Promise<{ address: Hex; signature: Uint8Array }> {
    const { status, body } = await this.call(
      ROUTES.signOrchestratorInfo,
      '',
      this.opts.infoTimeoutMs ?? 30_000,
    );
    if (status !== 200) throw refusal(status, body);
    try {
      const o = parseGoJson(body);
      const get = (k: string) => (o && typeof o === 'object' && 'get' in o ? o.get(k) : undefined);
      const address = hexField(get('address'), 'address', 20);
      const signature = hexField(get('signature'), 'signature', 65);
      return { address: getAddress(`0x${Buffer.from(address).toString('hex')}`), signature };
    } catch (err) {
      throw new RemoteSignerError(
        'invalid-reply',
        `signer's orchestrator info answer: ${(err as Error).message}`,
      );
    }
  }

  /**
   * One payment. Resolves with the payment, credentials and the next state, or 'no-tickets' (482:
   * the credit covers it; keep the state). Rejects with RemoteSignerError; a 480 carries the
   * orchestrator's URL: refresh the OrchestratorInfo and call again.
   */
  async generateLivePayment(req: PaymentRequest): Promise<PaymentResponse | 'no-tickets'> {
    const { status, body, orchestratorUrl } = await this.call(
      ROUTES.generateLivePayment,
      encodePaymentRequest(req),
      this.opts.paymentTimeoutMs ?? 15_000,
    );
    if (status === STATUS_NO_TICKETS) return 'no-tickets';
    if (status !== 200) throw refusal(status, body, orchestratorUrl);
    try {
      return parsePaymentResponse(body);
    } catch (err) {
      throw new RemoteSignerError('invalid-reply', `signer's payment answer: ${(err as Error).message}`);
    }
  }

  private async call(
    path: string,
    body: string,
    timeoutMs: number,
  ): Promise<{ status: number; body: Uint8Array; orchestratorUrl?: string }> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.url), {
        method: 'POST',
        headers: { ...this.headers, 'Content-Type': 'application/json' },
        body: body || undefined,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'manual',
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') {
        throw new RemoteSignerError('timeout', `remote signer ${this.url}: no answer within ${timeoutMs} ms`);
      }
      throw new RemoteSignerError(
        'unreachable',
        `remote signer ${this.url} unreachable: ${e.cause?.code ?? e.cause?.message ?? e.message}`,
      );
    }
    let data: Uint8Array;
    try {
      const body = await readCapped(res, MAX_REPLY_BYTES);
      if (!body) throw new Error(`answer larger than ${MAX_REPLY_BYTES} bytes`);
      data = body;
    } catch (err) {
      throw new RemoteSignerError(
        'invalid-reply',
        `remote signer ${this.url}: ${(err as Error).message}`,
        res.status,
      );
    }
    return {
      status: res.status,
      body: data,
      orchestratorUrl: res.headers.get(ORCHESTRATOR_URL_HEADER) ?? undefined,
    };
  }
}

/** A non-200 answer: go-livepeer's `{"error":{"message"}}`, or whatever text came. */
function refusal(status: number, body: Uint8Array, orchestratorUrl?: string): RemoteSignerError {
  let message = Buffer.from(body).toString('utf8').trim().slice(0, 300);
  try {
    const o = parseGoJson(body);
    const err = o && typeof o === 'object' && 'get' in o ? o.get('error') : undefined;
    const m = err && typeof err === 'object' && 'get' in err ? err.get('message') : undefined;
    if (typeof m === 'string') message = m;
  } catch {
    // not JSON: the text as it came
  }
  return new RemoteSignerError(
    'refused',
    `remote signer answered ${status}: ${message}`,
    status,
    orchestratorUrl,
  );
}

function hexField(v: unknown, what: string, size: number): Uint8Array {
  if (typeof v !== 'string') throw new GoJsonError(`${what} is missing`);
  const hex = v.startsWith('0x') || v.startsWith('0X') ? v.slice(2) : v;
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== size * 2) {
    throw new GoJsonError(`${what} must be ${size} bytes of hex`);
  }
  return hexToBytes(`0x${hex}`);
}
