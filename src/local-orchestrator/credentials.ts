// The orchestrator's side of go-livepeer's request credentials: auth tokens it hands out
// in OrchestratorInfo, and the Livepeer-Payment / Livepeer-Segment headers it checks.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type AuthToken, decodeMessage, type Payment, type SegData } from '../wire/lp-rpc.ts';

/** go-livepeer's authTokenValidPeriod. */
export const AUTH_TOKEN_VALID_MS = 30 * 60 * 1000;

/** Minimal big-endian bytes, as Go's big.Int.Bytes() (empty for 0). */
function minimalBigEndian(value: bigint): Buffer {
  if (value === 0n) return Buffer.alloc(0);
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, 'hex');
}

export function makeAuthToken(secret: Uint8Array, sessionId: string, expiration: bigint): AuthToken {
  const token = createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from(sessionId, 'utf8'), minimalBigEndian(expiration)]))
    .digest();
  return { token, sessionId, expiration };
}

export class CredentialError extends Error {
  constructor(
    readonly status: 402 | 403,
    message: string,
  ) {
    super(message);
  }
}

/** Livepeer-Payment: base64 protobuf. Empty or absent is an empty (off-chain) payment, as in
 * go-livepeer; whether that is enough is the payment check's business. 402 when unreadable. */
export function readPaymentHeader(header: string | undefined): Payment {
  if (!header) return {};
  const bytes = decodeBase64(header);
  if (!bytes) throw new CredentialError(402, 'Livepeer-Payment is not valid base64');
  try {
    return decodeMessage('Payment', bytes);
  } catch (err) {
    throw new CredentialError(402, `Livepeer-Payment is not a valid Payment: ${(err as Error).message}`);
  }
}

/** Livepeer-Segment: base64 SegData whose auth token this orchestrator issued and that has not expired. 403 otherwise. */
export function readSegmentHeader(header: string | undefined, secret: Uint8Array, now = Date.now()): SegData {
  const seg = decodeSegmentHeader(header);
  checkAuthToken(seg, secret, now);
  return seg;
}

/** Livepeer-Segment decoded, unchecked (403 when missing or unreadable). */
export function decodeSegmentHeader(header: string | undefined): SegData {
  if (!header) throw new CredentialError(403, 'missing Livepeer-Segment header');
  const bytes = decodeBase64(header);
  if (!bytes) throw new CredentialError(403, 'Livepeer-Segment is not valid base64');
  let seg: SegData;
  try {
    seg = decodeMessage('SegData', bytes);
  } catch (err) {
    throw new CredentialError(403, `Livepeer-Segment is not a valid SegData: ${(err as Error).message}`);
  }
  return seg;
}

/** The SegData's auth token: issued by this orchestrator (HMAC with its secret) and unexpired. 403 otherwise. */
export function checkAuthToken(seg: SegData, secret: Uint8Array, now = Date.now()): void {
  const token = seg.authToken;
  if (!token?.token || token.sessionId === undefined || token.expiration === undefined) {
    throw new CredentialError(403, 'missing auth token');
  }
  const expected = makeAuthToken(secret, token.sessionId, token.expiration).token as Buffer;
  if (expected.length !== token.token.length || !timingSafeEqual(expected, token.token)) {
    throw new CredentialError(403, 'invalid auth token');
  }
  if (BigInt(Math.floor(now / 1000)) > token.expiration) throw new CredentialError(403, 'expired auth token');
}

function decodeBase64(text: string): Buffer | undefined {
  // Node's decoder ignores junk; go's StdEncoding does not, so check the alphabet first.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64');
}
