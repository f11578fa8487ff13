// The headers a gateway sends with every paid request: Livepeer-Payment (the Payment
// protobuf, base64) and Livepeer-Segment (signed SegData carrying the auth token).
import { type Hex, keccak256 } from 'viem';
import {
  type Capabilities,
  encodeMessage,
  type OrchestratorInfo,
  type PriceInfo,
  type SegData,
} from '../wire/lp-rpc.ts';
import type { GatewayIdentity } from './identity.ts';

/** keccak256 of no bytes: the segment hash of payment-only requests. */
const EMPTY_HASH = keccak256(new Uint8Array(0), 'bytes');

export interface SegmentCredentialsInput {
  manifestId: string;
  seq?: bigint;
  hash?: Uint8Array;
  capabilities?: Capabilities;
}

/** Flatten() of go-livepeer's segment metadata: manifestId ‖ uint256(seq) ‖ hash ‖ hex(profiles). */
export function flattenSegment(manifestId: string, seq: bigint, hash: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(manifestId);
  const out = new Uint8Array(id.length + 32 + hash.length);
  out.set(id, 0);
  const seqBytes = new Uint8Array(32);
  let v = seq;
  for (let i = 31; i >= 0 && v > 0n; i--, v >>= 8n) seqBytes[i] = Number(v & 0xffn);
  out.set(seqBytes, id.length);
  out.set(hash, id.length + 32);
  return out;
}

export async function segmentCredentials(
  info: OrchestratorInfo,
  identity: GatewayIdentity,
  input: SegmentCredentialsInput,
): Promise<string> {
  const seq = input.seq ?? 0n;
  const hash = input.hash ?? EMPTY_HASH;
  const segData: SegData = {
    manifestId: new TextEncoder().encode(input.manifestId),
    seq,
    hash,
    sig: await identity.signHashOf(flattenSegment(input.manifestId, seq, hash)),
    capabilities: input.capabilities,
    authToken: info.authToken,
  };
  return Buffer.from(encodeMessage('SegData', segData)).toString('base64');
}

/** The off-chain payment: go-livepeer sends the header with an empty value. */
export const OFFCHAIN_PAYMENT = '';

/**
 * On chain, for a free orchestrator (go-livepeer's genPayment with 0 tickets): the sender and the
 * price expected, no tickets. The orchestrator checks the segment signature against this sender.
 */
export function senderOnlyPayment(sender: Hex, expectedPrice: PriceInfo | undefined): string {
  return Buffer.from(
    encodeMessage('Payment', { sender: Buffer.from(sender.slice(2), 'hex'), expectedPrice }),
  ).toString('base64');
}
