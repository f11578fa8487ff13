// The remote signer's payment state (go-livepeer's RemotePaymentState, server/remote_signer.go):
// the JSON a signer writes, signs and hands to the gateway, which returns it verbatim with the
// next payment request. Written as Go's json.Marshal writes it (same keys, order and formats) and
// read as Go's json.Unmarshal reads it, so that a state made by go-livepeer's signer (holding the
// same key) is read here and ours there.
import { bytesToHex, type Hex, hexToBytes, type LocalAccount, recoverMessageAddress } from 'viem';
import { signatureProblem } from '../payments/ticket.ts';
import {
  asInteger,
  asObject,
  asString,
  GoJsonError,
  goJsonString,
  INT64_MAX,
  INT64_MIN,
  parseGoJson,
  UINT32_MAX,
  UINT64_MAX,
} from './go-json.ts';

export interface PaymentState {
  /** Random per session; the signer's balance key (go: 4 random bytes as hex; ours: 16). */
  stateId: string;
  /** `0x` + the recipientRandHash the nonce belongs to. */
  pmSessionId: string;
  /** Epoch ms of the last billed call; undefined = Go's zero time (never billed). */
  lastUpdateMs: number | undefined;
  /** `0x` + 40 lowercase hex. */
  orchestratorAddress: Hex;
  app: string;
  /** Unix seconds until which the auth webhook is skipped. */
  authExpiry: bigint;
  /** The last nonce used for pmSessionId (uint32). */
  senderNonce: number;
  /** Credit left at the orchestrator, as big.Rat's RatString: `a/b`, or `a` (wei). */
  balance: string;
  initialPricePerUnit: bigint;
  initialPixelsPerUnit: bigint;
  type: string;
  sequenceNumber: bigint;
  authId: string;
}

/** The state as it travels: the JSON bytes and the signer's signature over them. */
export interface SignedState {
  state: Uint8Array;
  sig: Uint8Array;
}

/** Go's time.Time zero value as json.Marshal writes it. */
const ZERO_TIME = '0001-01-01T00:00:00Z';
const ZERO_TIME_MS = Date.parse('0001-01-01T00:00:00Z');

/** RFC 3339 as Go's time.Time.MarshalJSON writes it in UTC (RFC3339Nano: trailing zeros dropped). */
export function goTime(ms: number | undefined): string {
  if (ms === undefined) return ZERO_TIME;
  const iso = new Date(ms).toISOString(); // 2026-04-07T20:00:00.120Z
  return iso.replace(/\.(\d{3})Z$/, (_, frac: string) => {
    const f = frac.replace(/0+$/, '');
    return f ? `.${f}Z` : 'Z';
  });
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Go's time.Time.UnmarshalJSON (RFC 3339, any offset, up to ns), to epoch ms; the zero time is undefined. */
export function parseGoTime(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) throw new GoJsonError('LastUpdate is not an RFC 3339 time');
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  // Date.UTC maps years 0..99 to 1900..1999.
  if (Number(y) < 100) ms = new Date(ms).setUTCFullYear(Number(y));
  if (frac) ms += Math.floor(Number(`0.${frac}`) * 1000);
  if (zone !== 'Z') {
    const sign = zone![0] === '-' ? -1 : 1;
    const [zh, zm] = zone!.slice(1).split(':').map(Number) as [number, number];
    ms -= sign * (zh * 60 + zm) * 60_000;
  }
  if (!Number.isFinite(ms)) throw new GoJsonError('LastUpdate is out of range');
  // Go's IsZero is about the instant, whatever the offset it was written with.
  return ms === ZERO_TIME_MS ? undefined : ms;
}

/** The state's JSON bytes, exactly as go-livepeer's json.Marshal(state) lays them out. */
export function encodeState(st: PaymentState): Uint8Array {
  const json =
    `{"StateID":${goJsonString(st.stateId)},"PMSessionID":${goJsonString(st.pmSessionId)},` +
    `"LastUpdate":"${goTime(st.lastUpdateMs)}","OrchestratorAddress":"${st.orchestratorAddress.toLowerCase()}",` +
    `"App":${goJsonString(st.app)},"AuthExpiry":${st.authExpiry},"SenderNonce":${st.senderNonce},` +
    `"Balance":${goJsonString(st.balance)},"InitialPricePerUnit":${st.initialPricePerUnit},` +
    `"InitialPixelsPerUnit":${st.initialPixelsPerUnit},"Type":${goJsonString(st.type)},` +
    `"SequenceNumber":${st.sequenceNumber},"AuthID":${goJsonString(st.authId)}}`;
  return new TextEncoder().encode(json);
}

/** Reads state JSON as Go's json.Unmarshal does (keys case-insensitive, unknown keys ignored). */
export function decodeState(bytes: Uint8Array): PaymentState {
  const o = asObject(parseGoJson(bytes), 'state');
  if (!o) throw new GoJsonError('state is null');
  const address = asString(o.get('OrchestratorAddress'), 'OrchestratorAddress');
  // go-ethereum's Address: exactly 0x + 40 hex digits.
  if (!/^0[xX][0-9a-fA-F]{40}$/.test(address)) throw new GoJsonError('OrchestratorAddress is not an address');
  const lastUpdate = o.get('LastUpdate');
  return {
    stateId: asString(o.get('StateID'), 'StateID'),
    pmSessionId: asString(o.get('PMSessionID'), 'PMSessionID'),
    lastUpdateMs:
      lastUpdate === undefined || lastUpdate === null
        ? undefined
        : parseGoTime(asString(lastUpdate, 'LastUpdate')),
    orchestratorAddress: `0x${address.slice(2).toLowerCase()}` as Hex,
    app: asString(o.get('App'), 'App'),
    authExpiry: asInteger(o.get('AuthExpiry'), 'AuthExpiry', INT64_MIN, INT64_MAX),
    senderNonce: Number(asInteger(o.get('SenderNonce'), 'SenderNonce', 0n, UINT32_MAX)),
    balance: asString(o.get('Balance'), 'Balance'),
    initialPricePerUnit: asInteger(o.get('InitialPricePerUnit'), 'InitialPricePerUnit', INT64_MIN, INT64_MAX),
    initialPixelsPerUnit: asInteger(
      o.get('InitialPixelsPerUnit'),
      'InitialPixelsPerUnit',
      INT64_MIN,
      INT64_MAX,
    ),
    type: asString(o.get('Type'), 'Type'),
    sequenceNumber: asInteger(o.get('SequenceNumber'), 'SequenceNumber', 0n, UINT64_MAX),
    authId: asString(o.get('AuthID'), 'AuthID'),
  };
}

/**
 * The state JSON as an object for the auth webhook's body (`"state": {...}`): the same bytes,
 * since Go marshals the embedded struct the same way.
 */
export const stateJson = (st: PaymentState): string => new TextDecoder().decode(encodeState(st));

/** The signer's signature over the raw state bytes: EIP-191 with their length, no keccak first. */
export async function signState(account: LocalAccount, bytes: Uint8Array): Promise<Uint8Array> {
  return hexToBytes(await account.signMessage({ message: { raw: bytes } }));
}

/**
 * Whether `sig` over `bytes` is the signer's (go-livepeer crypto.VerifySig): 65 bytes, low s,
 * v 27 or 28, and recovery to `address`.
 */
export async function stateSignedBy(address: Hex, bytes: Uint8Array, sig: Uint8Array): Promise<boolean> {
  if (sig.length !== 65) return false;
  const hex = bytesToHex(sig);
  if (signatureProblem(hex)) return false;
  try {
    const signer = await recoverMessageAddress({ message: { raw: bytes }, signature: hex });
    return signer.toLowerCase() === address.toLowerCase();
  } catch {
    return false;
  }
}

/** go-livepeer's big.Rat.RatString: `a` when the denominator is 1, else `a/b`. */
export const ratString = (r: { num: bigint; den: bigint }): string =>
  r.den === 1n ? String(r.num) : `${r.num}/${r.den}`;
