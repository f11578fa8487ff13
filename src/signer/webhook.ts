// The payment-authorising webhook (go-livepeer's authLivePayment, server/remote_signer.go:300-355):
// POST {"headers": <the payment call's headers>, "state": <the new state>} and read
// {"status", "reason", "expiry", "auth_id", "maxPrice"}. Only an HTTP 200 with a positive
// `status` is an answer; anything else is the webhook's failure, which the signer turns into 500.
import { readCapped } from '../http/capped-body.ts';
import {
  asInteger,
  asNumberText,
  asObject,
  asString,
  GoJsonError,
  goJsonString,
  INT64_MAX,
  INT64_MIN,
  parseGoJson,
} from './go-json.ts';
import type { MaxPrice } from './protocol.ts';
import { type PaymentState, stateJson } from './state.ts';

export interface WebhookOptions {
  url: string;
  /** -remoteSignerWebhookHeaders: set on every webhook call. */
  headers: Record<string, string>;
  /** go-livepeer's is 5 s. */
  timeoutMs?: number;
}

export type WebhookAnswer =
  | { allowed: true; expiry: bigint; authId: string; maxPrice?: MaxPrice }
  | { allowed: false; status: number; reason: string };

/** The webhook did not answer usably; the signer answers 500 and logs `message`. */
export class WebhookError extends Error {
  override readonly name = 'WebhookError';
}

const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Header names as Go's http.Header keeps them (textproto canonical form: `Signer-Auth-Id`),
 * every value of a repeated header in order; Go leaves Host out of the map.
 */
export function goHeaderMap(rawHeaders: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = canonicalHeader(rawHeaders[i]!);
    if (name === 'Host') continue;
    const values = out.get(name) ?? [];
    values.push(rawHeaders[i + 1]!);
    out.set(name, values);
  }
  return out;
}

export function canonicalHeader(name: string): string {
  // Go leaves a name with characters outside the token set as it is.
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  return name
    .split('-')
    .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1).toLowerCase() : p))
    .join('-');
}

/** The webhook body as go-livepeer marshals it: map keys sorted, the state as an object. */
export function webhookBody(headers: Map<string, string[]>, state: PaymentState): string {
  const names = [...headers.keys()].sort();
  const h = names.map((n) => `${goJsonString(n)}:[${headers.get(n)!.map(goJsonString).join(',')}]`).join(',');
  return `{"headers":{${h}},"state":${stateJson(state)}}`;
}

export async function askWebhook(
  opts: WebhookOptions,
  headers: Map<string, string[]>,
  state: PaymentState,
  signal?: AbortSignal,
): Promise<WebhookAnswer> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 5000);
  let res: Response;
  try {
    res = await fetch(opts.url, {
      method: 'POST',
      headers: { ...opts.headers, 'Content-Type': 'application/json' },
      body: webhookBody(headers, state),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      redirect: 'manual',
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? 'no answer in time' : (e.cause?.code ?? e.message);
    throw new WebhookError(`the payment webhook could not be reached: ${why}`);
  }
  const body = await readCapped(res, MAX_ANSWER_BYTES);
  if (!body) throw new WebhookError(`the payment webhook's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
  if (res.status !== 200) throw new WebhookError(`the payment webhook answered HTTP ${res.status}`);
  let status: bigint;
  let o: ReturnType<typeof asObject>;
  try {
    o = asObject(parseGoJson(body), 'answer');
    if (!o) throw new GoJsonError('answer is null');
    status = asInteger(o.get('status'), 'status', INT64_MIN, INT64_MAX);
  } catch (err) {
    throw new WebhookError(`the payment webhook's answer is not usable: ${(err as Error).message}`);
  }
  if (status <= 0n || status > 999n) throw new WebhookError('the payment webhook sent no valid status');
  if (status !== 200n) {
    let reason = '';
    try {
      reason = asString(o.get('reason'), 'reason');
    } catch {
      throw new WebhookError("the payment webhook's reason is not a string");
    }
    return {
      allowed: false,
      status: Number(status),
      reason: reason || `signer auth rejected request with status ${status}`,
    };
  }
  let expiry = 0n;
  let authId = '';
  try {
    expiry = asInteger(o.get('expiry'), 'expiry', INT64_MIN, INT64_MAX);
    authId = asString(o.get('auth_id'), 'auth_id');
  } catch (err) {
    throw new WebhookError(`the payment webhook's answer is not usable: ${(err as Error).message}`);
  }
  let maxPrice: MaxPrice | undefined;
  try {
    const mp = asObject(o.get('maxPrice'), 'maxPrice');
    if (mp) {
      maxPrice = {
        price: asNumberText(mp.get('price'), 'maxPrice.price'),
        currency: asString(mp.get('currency'), 'maxPrice.currency'),
        unit: asString(mp.get('unit'), 'maxPrice.unit'),
      };
    }
  } catch (err) {
    // A maxPrice Go cannot even decode fails the whole answer: 500.
    throw new WebhookError(`the payment webhook's answer is not usable: ${(err as Error).message}`);
  }
  return { allowed: true, expiry, authId, maxPrice };
}
