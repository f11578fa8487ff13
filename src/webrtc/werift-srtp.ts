// What we change in werift's SRTP: the profile a peer's DTLS handshake picks, and, for ingest, the
// decryption of received RTP.
//
// werift decrypts every received packet with new node:crypto objects (a Decipher for AES-GCM; a
// Decipher and an Hmac for AES-CM). Each is a C++ object that V8 frees through a weak callback at
// the next scavenge: at 5 published streams those callbacks were 2-12 ms of every scavenge, the
// largest part of the stalls left at a stream start (docs/performance.md, point 5). Ingest peers
// therefore also ask for AES_CM_128_HMAC_SHA1_80, and once the handshake settled on it,
// useOwnSrtpDecrypt() has werift's SRTP session check and decrypt with SrtpCmContext (one ECB
// context for the keystream, the HMAC from precomputed blocks): no object per packet. The rollover
// counter stays werift's own per-SSRC state, advanced by werift's own rule; an SSRC's first packet,
// a packet that fails the check (werift then throws its own authentication error, which it logs and
// drops) and anything shaped oddly go to werift's decrypt.
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { CM_PREFIX, CM_TAG_LENGTH, SrtpCmContext } from './srtp-cm.ts';

/** werift's numbers for the SRTP profiles (RFC 5764 / RFC 7714). */
export const SRTP_AES128_CM_HMAC_SHA1_80 = 1;
export const SRTP_AEAD_AES_128_GCM = 7;

/** The werift DTLS transport fields the SRTP preference sets (werift 0.24). */
interface WeriftDtlsRole {
  srtpProfiles: number[];
  role: 'auto' | 'client' | 'server';
  remoteParameters?: { role: 'auto' | 'client' | 'server' };
}

/**
 * Makes the peer's DTLS handshake pick AES_CM_128_HMAC_SHA1_80. The DTLS server picks the profile
 * (the first of its own list the client offers), and werift, answering an actpass offer, would be
 * the client (a=setup:active) and leave the choice to the remote, which picks GCM. So we answer
 * a=setup:passive (RFC 5763 allows either; over WHIP/WHEP the remote has our answer before ICE can
 * start, so it costs no round trip) and list CM first. Every WebRTC endpoint offers CM (RFC 8827
 * makes it mandatory to implement); one that offers only GCM still gets GCM. Runs after the offer
 * is applied, before the answer is made and before DTLS starts.
 */
export function preferAesCm(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports as unknown as WeriftDtlsRole[]) {
    transport.srtpProfiles = [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM];
    if (transport.role === 'auto' && transport.remoteParameters?.role === 'auto') transport.role = 'server';
  }
}

/** The profile werift's SRTP session uses, once DTLS has settled it. */
export function srtpProfileOf(
  dtls: RTCDtlsTransport,
): 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_128_GCM' | undefined {
  const profile = (dtls as unknown as { srtp?: { remoteContext?: { profile?: number } } }).srtp?.remoteContext
    ?.profile;
  if (profile === SRTP_AES128_CM_HMAC_SHA1_80) return 'AES_CM_128_HMAC_SHA1_80';
  if (profile === SRTP_AEAD_AES_128_GCM) return 'AEAD_AES_128_GCM';
  return undefined;
}

interface RocState {
  rolloverHasProcessed?: boolean;
  rolloverCounter: number;
  lastSequenceNumber: number;
}

/** werift's SRTP session and its receiving context (werift 0.24). */
interface WeriftSrtpSession {
  decrypt: (packet: Buffer) => Buffer;
  remoteContext: {
    profile: number;
    srtpSessionKey: Buffer;
    srtpSessionSalt: Buffer;
    srtpSessionAuthTag: Buffer;
    srtpSSRCStates: Record<number, RocState | undefined>;
    updateRolloverCount(sequenceNumber: number, state: RocState): void;
  };
}

/** RTP packets decrypted since useOwnSrtpDecrypt, by whom. */
export interface SrtpDecryptCounts {
  /** By SrtpCmContext. */
  own: number;
  /** By werift (each SSRC's first packet, refused packets, odd shapes). */
  werift: number;
}

const installed = new WeakMap<object, SrtpDecryptCounts>();

/**
 * Replaces werift's RTP decryption on this transport's current SRTP session with ours when the
 * session is AES-CM. Returns the session's counts when it did (or had), undefined when not (not
 * yet keyed, another profile, or werift's session not as expected; werift's decryption stays).
 */
export function useOwnSrtpDecrypt(dtls: RTCDtlsTransport): SrtpDecryptCounts | undefined {
  const session = (dtls as unknown as { srtp?: WeriftSrtpSession }).srtp;
  if (!session) return undefined;
  const already = installed.get(session);
  if (already) return already;
  const ctx = session.remoteContext;
  if (
    typeof session.decrypt !== 'function' ||
    typeof ctx?.updateRolloverCount !== 'function' ||
    typeof ctx.srtpSSRCStates !== 'object' ||
    ctx.profile !== SRTP_AES128_CM_HMAC_SHA1_80 ||
    !Buffer.isBuffer(ctx.srtpSessionKey) ||
    !Buffer.isBuffer(ctx.srtpSessionSalt) ||
    !Buffer.isBuffer(ctx.srtpSessionAuthTag)
  )
    return undefined;
  const counts: SrtpDecryptCounts = { own: 0, werift: 0 };
  installed.set(session, counts);
  const weriftDecrypt = session.decrypt;
  const werift = (packet: Buffer): Buffer => {
    counts.werift++;
    return weriftDecrypt(packet);
  };
  const contexts = new Map<number, SrtpCmContext>();
  const next: RocState = { rolloverCounter: 0, lastSequenceNumber: 0 };
  session.decrypt = (packet: Buffer): Buffer => {
    const payloadEnd = packet.length - CM_TAG_LENGTH;
    const headerLength = payloadOffsetAsWerift(packet, payloadEnd);
    if (headerLength < 0) return werift(packet);
    const ssrc = packet.readUInt32BE(8);
    const state = ctx.srtpSSRCStates[ssrc];
    if (state === undefined) return werift(packet);
    next.rolloverHasProcessed = state.rolloverHasProcessed;
    next.rolloverCounter = state.rolloverCounter;
    next.lastSequenceNumber = state.lastSequenceNumber;
    ctx.updateRolloverCount(packet.readUInt16BE(2), next);
    let cm = contexts.get(ssrc);
    if (!cm) {
      cm = new SrtpCmContext(ctx.srtpSessionKey, ctx.srtpSessionSalt, ctx.srtpSessionAuthTag, ssrc);
      contexts.set(ssrc, cm);
    }
    // From Node's buffer pool: the packet outlives this call (frames keep views of it).
    const out = Buffer.allocUnsafe(CM_PREFIX + payloadEnd + CM_TAG_LENGTH);
    packet.copy(out, CM_PREFIX, 0, payloadEnd);
    const ok = cm.unprotect(
      out,
      headerLength,
      payloadEnd - headerLength,
      next.rolloverCounter,
      packet,
      payloadEnd,
    );
    if (!ok) return werift(packet);
    const plain = out.subarray(CM_PREFIX, CM_PREFIX + payloadEnd);
    // werift's padding check (RFC 3550: the last byte counts the padding, itself included).
    if (packet[0] & 0x20) {
      const padding = plain[plain.length - 1] as number;
      if (!(plain.length > headerLength && padding > 0 && padding <= plain.length - headerLength))
        return werift(packet);
    }
    state.rolloverHasProcessed = next.rolloverHasProcessed;
    state.rolloverCounter = next.rolloverCounter;
    state.lastSequenceNumber = next.lastSequenceNumber;
    counts.own++;
    return plain;
  };
  return counts;
}

/**
 * Where werift's header parse puts the payload of `packet` (its tag excluded, at payloadEnd), or
 * -1 where that parse would do something other than RFC 3550's fixed header, CSRCs and one
 * extension block of RFC 8285 elements that fill it exactly (werift then decides).
 */
export function payloadOffsetAsWerift(packet: Buffer, payloadEnd: number): number {
  if (payloadEnd < 12) return -1;
  const first = packet[0] as number;
  let offset = 12 + 4 * (first & 0x0f);
  if ((first & 0x10) === 0) return offset <= payloadEnd ? offset : -1;
  if (offset + 4 > payloadEnd) return -1;
  const profile = packet.readUInt16BE(offset);
  const end = offset + 4 + 4 * packet.readUInt16BE(offset + 2);
  if (end > payloadEnd) return -1;
  offset += 4;
  if (profile === 0xbede) {
    while (offset < end) {
      const byte = packet[offset] as number;
      if (byte === 0) {
        offset++;
        continue;
      }
      if (byte >> 4 === 15) return -1; // werift stops there, inside the block
      offset += 1 + (byte & 0x0f) + 1;
    }
  } else if (profile === 0x1000) {
    while (offset < end) {
      if (packet[offset] === 0) {
        offset++;
        continue;
      }
      if (offset + 1 >= end) return -1;
      offset += 2 + (packet[offset + 1] as number);
    }
  } else {
    offset = end;
  }
  return offset === end ? end : -1;
}
