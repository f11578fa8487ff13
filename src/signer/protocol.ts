// The remote signer's wire, both ends (go-livepeer@176aa41 server/remote_signer.go and its
// gateway side, server/live_payment.go): status codes, header names, the payment request and
// response as JSON. Field spellings are go-livepeer's exactly (`ManifestID` has no JSON tag).
import { type Rational, rat } from '../payments/rational.ts';
import {
  asBytes,
  asInteger,
  asNumberText,
  asObject,
  asString,
  GoJsonError,
  goJsonString,
  INT64_MAX,
  INT64_MIN,
  type JsonObject,
  parseGoJson,
} from './go-json.ts';
import type { SignedState } from './state.ts';

/** Refresh the session: fetch OrchestratorInfo again (GetOrchestrator) and retry. */
export const STATUS_REFRESH_SESSION = 480;
/** The orchestrator's price is above a ceiling. */
export const STATUS_PRICE_EXCEEDED = 481;
/** The credit already covers this call: nothing to pay now. */
export const STATUS_NO_TICKETS = 482;
/** Sent with 480: where to ask for fresh OrchestratorInfo. */
export const ORCHESTRATOR_URL_HEADER = 'Livepeer-Orchestrator-URL';
/** The auth id a caller may pin into the state when the webhook names none. */
export const AUTH_ID_HEADER = 'Signer-Auth-Id';

export const ROUTES = {
  signOrchestratorInfo: '/sign-orchestrator-info',
  generateLivePayment: '/generate-live-payment',
  discoverOrchestrators: '/discover-orchestrators',
  healthz: '/healthz',
} as const;

/** go-livepeer's job types; `""` bills `inPixels`. */
export const PAYMENT_TYPES = ['lv2v', 'live', 'fixed', ''] as const;

/** The price unit each type's maxPrice must be in. */
export const MAX_PRICE_UNITS: Record<string, string> = {
  live: 'seconds',
  lv2v: '720p-pixel-seconds',
  fixed: 'fixed',
};

/** runner.LiveRunnerPriceInfo: the price as written (a JSON number or a numeric string). */
export interface MaxPrice {
  price: string;
  currency: string;
  unit: string;
}

export interface PaymentRequest {
  state?: SignedState;
  /** net.OrchestratorInfo protobuf bytes. */
  orchestrator: Uint8Array;
  manifestId: string;
  app: string;
  inPixels: bigint;
  type: string;
  maxPrice?: MaxPrice;
  /** net.Capabilities protobuf bytes; empty when not sent. */
  capabilities: Uint8Array;
}

export interface PaymentResponse {
  /** Livepeer-Payment: base64 net.Payment. */
  payment: string;
  /** Livepeer-Segment: base64 net.SegData. */
  segCreds: string;
  state: SignedState;
}

function readMaxPrice(v: JsonObject | undefined, what: string): MaxPrice | undefined {
  if (!v) return undefined;
  return {
    price: asNumberText(v.get('price'), `${what}.price`),
    currency: asString(v.get('currency'), `${what}.currency`),
    unit: asString(v.get('unit'), `${what}.unit`),
  };
}

/** A RemotePaymentRequest as go-livepeer's signer decodes it. @throws GoJsonError */
export function parsePaymentRequest(body: Uint8Array): PaymentRequest {
  const o = asObject(parseGoJson(body), 'request');
  if (!o) throw new GoJsonError('request must be a JSON object');
  const st = asObject(o.get('state'), 'state');
  const state = st
    ? { state: asBytes(st.get('State'), 'state.State'), sig: asBytes(st.get('Sig'), 'state.Sig') }
    : undefined;
  return {
    state: state && (state.state.length > 0 || state.sig.length > 0) ? state : undefined,
    orchestrator: asBytes(o.get('orchestrator'), 'orchestrator'),
    manifestId: asString(o.get('ManifestID'), 'ManifestID'),
    app: asString(o.get('app'), 'app'),
    inPixels: asInteger(o.get('inPixels'), 'inPixels', INT64_MIN, INT64_MAX),
    type: asString(o.get('type'), 'type'),
    maxPrice: readMaxPrice(asObject(o.get('maxPrice'), 'maxPrice'), 'maxPrice'),
    capabilities: asBytes(o.get('capabilities'), 'capabilities'),
  };
}

const b64 = (b: Uint8Array | undefined): string =>
  b && b.length > 0 ? `"${Buffer.from(b).toString('base64')}"` : 'null';

/**
 * The request body exactly as go-livepeer's gateway marshals it: `state` always present (both
 * null on the first call), `app` and `maxPrice` only when set, `capabilities` null when unset.
 */
export function encodePaymentRequest(r: PaymentRequest): string {
  const parts = [
    `"state":{"State":${b64(r.state?.state)},"Sig":${b64(r.state?.sig)}}`,
    `"orchestrator":${b64(r.orchestrator)}`,
    `"ManifestID":${goJsonString(r.manifestId)}`,
    ...(r.app ? [`"app":${goJsonString(r.app)}`] : []),
    `"inPixels":${r.inPixels}`,
    `"type":${goJsonString(r.type)}`,
    ...(r.maxPrice
      ? [
          `"maxPrice":{"price":${r.maxPrice.price},"currency":${goJsonString(r.maxPrice.currency)},"unit":${goJsonString(r.maxPrice.unit)}}`,
        ]
      : []),
    `"capabilities":${b64(r.capabilities)}`,
  ];
  return `{${parts.join(',')}}`;
}

/** The 200 body as go-livepeer's signer writes it (json.Encoder: a newline at the end). */
export function encodePaymentResponse(r: PaymentResponse): string {
  const state = `{"State":${b64(r.state.state)},"Sig":${b64(r.state.sig)}}`;
  const segCreds = r.segCreds ? `,"segCreds":${goJsonString(r.segCreds)}` : '';
  return `{"payment":${goJsonString(r.payment)}${segCreds},"state":${state}}\n`;
}

/** A 200 body as a client reads it; what pygw requires: a non-empty payment and a state object. */
export function parsePaymentResponse(body: Uint8Array): PaymentResponse {
  const o = asObject(parseGoJson(body), 'response');
  if (!o) throw new GoJsonError('response must be a JSON object');
  const payment = asString(o.get('payment'), 'payment');
  if (!payment) throw new GoJsonError('payment is missing');
  const st = asObject(o.get('state'), 'state');
  if (!st) throw new GoJsonError('state is missing');
  return {
    payment,
    segCreds: asString(o.get('segCreds'), 'segCreds'),
    state: { state: asBytes(st.get('State'), 'state.State'), sig: asBytes(st.get('Sig'), 'state.Sig') },
  };
}

/**
 * A decimal as big.Rat.SetString reads it (`1`, `0.25`, `1.5e3`, `-2`), exactly.
 * @throws GoJsonError
 */
export function decimalRational(text: string): Rational {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === ''))
    throw new GoJsonError(`${JSON.stringify(text)} is not a decimal`);
  const [, sgn, int, frac = '', exp = '0'] = m;
  const e = Number(exp) - frac.length;
  if (Math.abs(e) > 1000) throw new GoJsonError(`${JSON.stringify(text)} is out of range`);
  let num = BigInt(`${int || '0'}${frac}`);
  if (sgn === '-') num = -num;
  return e >= 0 ? rat(num * 10n ** BigInt(e)) : rat(num, 10n ** BigInt(-e));
}
