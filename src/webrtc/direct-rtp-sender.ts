// The egress hot path: one RTP packet → SRTP → the viewer's UDP socket, with werift's negotiated keys
// but without werift's per-packet work. werift's RTCRtpSender.sendRtp builds an RtpHeader and
// RtpPacket, rebuilds the header extensions with map/filter/sort, computes an NTP time through a
// string split and BigInts, feeds its bandwidth estimator, and goes through four async functions
// (four promises) down to dgram's send(); profiled under fan-out that was most of the gateway's CPU
// besides the syscall and the cipher itself (docs/performance.md). Here a packet costs a header
// written into the output buffer, one node:crypto cipher (AES-GCM) or a share of a batched keystream
// and two SHA-1 calls (AES-CM + HMAC-SHA1, src/webrtc/srtp-cm.ts), and one send(); a frame's
// packets to one viewer go to the kernel in one system call (sendFrame, udp-send.ts batchSend).
//
// What werift's sender still does for us: RTCP (sender reports are fed the same counters, so RTT
// and receiver reports keep working), PLI/FIR/NACK parsing. NACKs are answered here from our own
// history, since werift's history stays empty. Anything we cannot do the same way (another SRTP
// profile, header extensions besides mid, RED) makes create() return undefined: the caller then
// keeps werift's path.
import { createCipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { RTCRtpSender } from 'werift';
import { CM_PREFIX, CM_TAG_LENGTH, SrtpCmContext } from './srtp-cm.ts';
import { batchSend, type DatagramBatchSend, type DatagramSend, directSend } from './udp-send.ts';
import { MuxStunProtocol } from './werift-ice.ts';

/** werift's numbers for the two SRTP profiles it negotiates (RFC 5764 / RFC 7714). */
const PROFILE_AES128_CM_HMAC_SHA1_80 = 1;
const PROFILE_AEAD_AES_128_GCM = 7;
const SDES_MID_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';
/** Packets kept for NACKs: about 2 s of a 2 Mbit/s stream (werift keeps 128). */
const HISTORY = 512;
/**
 * Every packet is written into this one buffer and sent from it: a send that the kernel took within
 * the call (udp-send.ts) leaves it free for the next packet, of any viewer. Only when a send is
 * queued (the socket is backed up, or the path is not a plain UDP socket) does the packet keep the
 * buffer and a new one is made: no allocation per packet otherwise.
 */
const SCRATCH_BYTES = CM_PREFIX + 2048;
let scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
/**
 * A frame for one viewer is written here packet after packet and handed to the kernel in one call
 * (udp-send.ts batchSend). One batch at a time (sendFrame runs to its end without yielding).
 */
const BATCH_BYTES = 256 * 1024;
const BATCH_PACKETS = 256;
const batch = {
  open: false,
  buffer: Buffer.allocUnsafeSlow(BATCH_BYTES),
  used: 0,
  count: 0,
  offsets: new Uint32Array(BATCH_PACKETS),
  lengths: new Uint32Array(BATCH_PACKETS),
};
/** NTP seconds at the Unix epoch. */
const NTP_EPOCH_OFFSET = 2_208_988_800;

type Address = [string, number];

/** The parts of werift's private state this path reads or feeds (werift 0.24). */
interface WeriftSenderInternals {
  ssrc: number;
  mid?: string;
  headerExtensions: { id: number; uri: string }[];
  redRedundantPayloadType?: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  octetCount: number;
  packetCount: number;
  runRtcp(): Promise<void>;
  dtlsTransport: {
    state: string;
    srtp?: {
      localContext?: {
        profile: number;
        cipher: {
          srtpSessionKey: Buffer;
          srtpSessionSalt: Buffer;
          srtpSessionAuthTag?: Buffer;
        };
      };
    };
    iceTransport: { connection: IceConnection };
  };
}

interface IceConnection {
  nominated?: { protocol: DatagramProtocol; remoteAddr: Address; packetsSent: number; bytesSent: number };
  canSendApplicationData?: () => boolean;
}

interface DatagramProtocol {
  transport?: { socket?: Socket; closed?: boolean };
  sendData(data: Buffer, addr: Address): Promise<void>;
}

/** SRTP for one SSRC with keys from one DTLS handshake (werift's context is `source`): one profile. */
type Keys =
  | { source: object; gcm: { key: KeyObject; salt: Buffer }; cm?: undefined }
  | { source: object; cm: SrtpCmContext; gcm?: undefined };

/** werift's ntpTime() as a proper 64-bit NTP timestamp, recomputed at most once a millisecond. */
let ntpMs = -1;
let ntpValue = 0n;
function ntpNow(): bigint {
  const ms = Math.floor(performance.timeOrigin + performance.now());
  if (ms !== ntpMs) {
    ntpMs = ms;
    const seconds = Math.floor(ms / 1000);
    const fraction = Math.floor(((ms % 1000) / 1000) * 2 ** 32);
    ntpValue = (BigInt(seconds + NTP_EPOCH_OFFSET) << 32n) | BigInt(fraction);
  }
  return ntpValue;
}

export class DirectRtpSender {
  /** Packets resent in answer to NACKs. */
  retransmitted = 0;
  readonly #sender: WeriftSenderInternals;
  readonly #payloadType: number;
  readonly #extension: Buffer;
  #keys: Keys | undefined;
  #roc = 0;
  #lastSeq = -1;
  readonly #iv = Buffer.alloc(12);
  readonly #history: (Uint8Array | undefined)[] = new Array(HISTORY);
  readonly #historySeq = new Int32Array(HISTORY).fill(-1);
  readonly #historyTimestamp = new Uint32Array(HISTORY);
  readonly #historyMarker = new Uint8Array(HISTORY);
  readonly #historyRoc = new Uint32Array(HISTORY);
  #pair: IceConnection['nominated'];
  /** Sends one packet; true when it left within the call (its buffer is free again). */
  #send: ((data: Buffer) => boolean) | undefined;
  /** Sends a batch on the pair's socket (undefined: packet by packet). */
  #sendBatch: ((count: number) => number) | undefined;

  private constructor(sender: WeriftSenderInternals, payloadType: number, extension: Buffer) {
    this.#sender = sender;
    this.#payloadType = payloadType;
    this.#extension = extension;
  }

  /** A direct path for this werift sender, or undefined when its setup needs werift's own. */
  static create(sender: RTCRtpSender, payloadType: number): DirectRtpSender | undefined {
    const s = sender as unknown as WeriftSenderInternals;
    if (s.redRedundantPayloadType !== undefined || typeof s.runRtcp !== 'function') return undefined;
    const extensions = s.headerExtensions ?? [];
    if (extensions.some((e) => e.uri !== SDES_MID_URI)) return undefined;
    const mid = extensions.length && s.mid ? Buffer.from(s.mid) : undefined;
    if (mid && (mid.length > 16 || extensions[0].id < 1 || extensions[0].id > 14)) return undefined;
    return new DirectRtpSender(
      s,
      payloadType,
      mid ? oneByteExtension(extensions[0].id, mid) : Buffer.alloc(0),
    );
  }

  /**
   * Encrypts and sends one packet. false: this path cannot send now (no SRTP keys it knows, no
   * nominated pair); the caller may hand the packet to werift instead.
   */
  send(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    const keys = this.#ready();
    if (!keys) return false;
    this.#sendPacket(keys, payload, seq, timestamp, marker);
    return true;
  }

  /** The keys to send with now, or undefined when this path cannot send (see send()). */
  #ready(): Keys | undefined {
    const keys = this.#currentKeys();
    if (!keys || this.#sender.dtlsTransport.state !== 'connected' || !this.#canTransmit()) return undefined;
    return keys;
  }

  #sendPacket(keys: Keys, payload: Uint8Array, seq: number, timestamp: number, marker: boolean): void {
    seq &= 0xffff;
    // RFC 3711 3.3.1: our own sequence numbers only go forward (retransmits use the stored ROC).
    if (this.#lastSeq >= 0 && seq < this.#lastSeq && this.#lastSeq - seq > 0x8000)
      this.#roc = (this.#roc + 1) >>> 0;
    this.#lastSeq = seq;
    const slot = seq % HISTORY;
    this.#history[slot] = payload;
    this.#historySeq[slot] = seq;
    this.#historyTimestamp[slot] = timestamp;
    this.#historyMarker[slot] = marker ? 1 : 0;
    this.#historyRoc[slot] = this.#roc;
    this.#transmit(this.#protect(keys, payload, seq, timestamp, marker, this.#roc));
    const s = this.#sender;
    s.ntpTimestamp = ntpNow();
    s.rtpTimestamp = timestamp;
    s.octetCount += payload.length;
    s.packetCount = (s.packetCount + 1) >>> 0;
    // Starts werift's sender reports once (it returns at once while they run).
    if (s.packetCount === 1) s.runRtcp().catch(() => {});
  }

  /**
   * Encrypts and sends a frame's packets (sequence numbers firstSeq, firstSeq+1, …) in as few system
   * calls as the socket allows. false as for send(), when nothing was sent.
   */
  sendFrame(
    packets: readonly { payload: Uint8Array; marker: boolean }[],
    firstSeq: number,
    timestamp: number,
  ): boolean {
    if (!packets.length) return true;
    // Checked once for the frame: nothing below yields, so nothing changes between its packets.
    const keys = this.#ready();
    if (!keys) return false;
    if (packets.length === 1 || !this.#sendBatch) {
      for (let i = 0; i < packets.length; i++)
        this.#sendPacket(keys, packets[i].payload, firstSeq + i, timestamp, packets[i].marker);
      return true;
    }
    batch.open = true;
    try {
      const overhead = CM_PREFIX + 12 + this.#extension.length + 16;
      for (let i = 0; i < packets.length; i++) {
        const { payload } = packets[i];
        if (batch.count === BATCH_PACKETS || batch.used + overhead + payload.length > BATCH_BYTES)
          this.#flush();
        this.#sendPacket(keys, payload, firstSeq + i, timestamp, packets[i].marker);
      }
    } finally {
      batch.open = false;
      this.#flush();
    }
    return true;
  }

  /** Answers a NACK: resends the packets still in the history. */
  resend(lost: readonly number[]): void {
    const keys = this.#currentKeys();
    if (!keys || !this.#canTransmit()) return;
    for (const seq of lost) {
      const slot = seq % HISTORY;
      const payload = this.#history[slot];
      if (!payload || this.#historySeq[slot] !== seq) continue;
      const marker = this.#historyMarker[slot] === 1;
      this.#transmit(
        this.#protect(keys, payload, seq, this.#historyTimestamp[slot], marker, this.#historyRoc[slot]),
      );
      this.retransmitted++;
    }
  }

  #protect(
    keys: Keys,
    payload: Uint8Array,
    seq: number,
    timestamp: number,
    marker: boolean,
    roc: number,
  ): Buffer {
    const headerLength = 12 + this.#extension.length;
    if (keys.cm) {
      const out = outputBuffer(CM_PREFIX + headerLength + payload.length + CM_TAG_LENGTH);
      this.#writeHeader(out, CM_PREFIX, seq, timestamp, marker);
      return keys.cm.protect(out, headerLength, payload, roc, seq);
    }
    const out = outputBuffer(headerLength + payload.length + 16);
    this.#writeHeader(out, 0, seq, timestamp, marker);
    // RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt, 12 bytes.
    const iv = this.#iv;
    const { key, salt } = keys.gcm;
    iv.fill(0);
    iv.writeUInt32BE(this.#sender.ssrc >>> 0, 2);
    iv.writeUInt32BE(roc, 6);
    iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i] ^= salt[i];
    const cipher = createCipheriv('aes-128-gcm', key, iv);
    cipher.setAAD(out.subarray(0, headerLength));
    cipher.update(payload).copy(out, headerLength);
    cipher.final();
    cipher.getAuthTag().copy(out, headerLength + payload.length);
    return out.subarray(0, headerLength + payload.length + 16);
  }

  /** The RTP header (and the mid extension) at out[at…]. */
  #writeHeader(out: Buffer, at: number, seq: number, timestamp: number, marker: boolean): void {
    const ext = this.#extension;
    out[at] = ext.length ? 0x90 : 0x80;
    out[at + 1] = (marker ? 0x80 : 0) | this.#payloadType;
    out.writeUInt16BE(seq, at + 2);
    out.writeUInt32BE(timestamp >>> 0, at + 4);
    out.writeUInt32BE(this.#sender.ssrc >>> 0, at + 8);
    if (ext.length) ext.copy(out, at + 12);
  }

  /** The keys of the current SRTP session (re-read when werift makes a new one). */
  #currentKeys(): Keys | undefined {
    const context = this.#sender.dtlsTransport.srtp?.localContext;
    if (!context) return undefined;
    if (this.#keys?.source === context) return this.#keys;
    const { profile, cipher } = context;
    if (profile === PROFILE_AEAD_AES_128_GCM) {
      this.#keys = {
        source: context,
        gcm: { key: createSecretKey(cipher.srtpSessionKey), salt: Buffer.from(cipher.srtpSessionSalt) },
      };
    } else if (profile === PROFILE_AES128_CM_HMAC_SHA1_80 && cipher.srtpSessionAuthTag) {
      this.#keys = {
        source: context,
        cm: new SrtpCmContext(
          cipher.srtpSessionKey,
          cipher.srtpSessionSalt,
          cipher.srtpSessionAuthTag,
          this.#sender.ssrc,
        ),
      };
    } else {
      this.#keys = undefined;
      return undefined;
    }
    // A new SRTP session starts its rollover count again.
    this.#roc = 0;
    this.#lastSeq = -1;
    this.#historySeq.fill(-1);
    return this.#keys;
  }

  /** Whether a nominated pair can carry data now; resolves its send function after an ICE restart. */
  #canTransmit(): boolean {
    const connection = this.#sender.dtlsTransport.iceTransport.connection;
    const pair = connection.nominated;
    if (!pair) return false;
    // RFC 7675: no application data once consent has expired.
    if (connection.canSendApplicationData && !connection.canSendApplicationData()) return false;
    if (pair !== this.#pair) {
      this.#flush();
      this.#pair = pair;
      this.#send = sendFunction(pair.protocol, pair.remoteAddr);
      this.#sendBatch = batchFunction(pair.protocol, pair.remoteAddr);
    }
    return this.#send !== undefined;
  }

  /** Hands the batch to the kernel; what it did not take goes packet by packet, copied (it queues). */
  #flush(): void {
    const count = batch.count;
    if (!count) return;
    batch.count = 0;
    batch.used = 0;
    const sent = this.#sendBatch?.(count) ?? 0;
    for (let i = sent; i < count; i++) {
      const start = batch.offsets[i];
      this.#send?.(Buffer.from(batch.buffer.subarray(start, start + batch.lengths[i])));
    }
  }

  #transmit(data: Buffer): void {
    if (batch.open && data.buffer === batch.buffer.buffer) {
      // Written into the batch: it leaves with the rest of the frame.
      batch.offsets[batch.count] = data.byteOffset;
      batch.lengths[batch.count] = data.length;
      batch.count++;
    } else {
      // Outside the batch (a packet too large for it): what is batched goes first.
      this.#flush();
      // A send that did not finish within the call keeps the shared buffer: the next packet gets a new one.
      if (!this.#send?.(data) && data.buffer === scratch.buffer)
        scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    }
    const pair = this.#pair;
    if (pair) {
      pair.packetsSent++;
      pair.bytesSent += data.length;
    }
  }
}

function sendFunction(protocol: DatagramProtocol, addr: Address): ((data: Buffer) => boolean) | undefined {
  const [host, port] = addr;
  if (protocol instanceof MuxStunProtocol) return (data) => protocol.sendDatagram(data, addr);
  const transport = protocol.transport;
  const socket = transport?.socket;
  if (socket && typeof socket.send === 'function' && isIP(host) !== 0) {
    // Into the socket's handle within the call: no callback, no lookup, no request object per packet.
    const send: DatagramSend = directSend(socket);
    return (data) => !transport.closed && send(data, port, host);
  }
  // ICE-TCP and anything else: the protocol frames it (later: the buffer is not free on return).
  return (data) => {
    protocol.sendData(data, addr).catch(() => {});
    return false;
  };
}

/** The batch's next free bytes while a batch is open, else the shared output buffer, or a buffer of its own. */
function outputBuffer(bytes: number): Buffer {
  if (batch.open && batch.used + bytes <= BATCH_BYTES) {
    const out = batch.buffer.subarray(batch.used, batch.used + bytes);
    batch.used += bytes;
    return out;
  }
  return bytes <= scratch.length ? scratch : Buffer.allocUnsafe(bytes);
}

function batchFunction(protocol: DatagramProtocol, addr: Address): ((count: number) => number) | undefined {
  // The shared UDP port: the same batches, on the mux's socket.
  if (protocol instanceof MuxStunProtocol)
    return (count) => protocol.sendDatagramBatch(batch.buffer, batch.offsets, batch.lengths, count, addr);
  const [host, port] = addr;
  const transport = protocol.transport;
  const socket = transport?.socket;
  if (!socket || isIP(host) === 0) return undefined;
  const send: DatagramBatchSend | undefined = batchSend(socket);
  if (!send) return undefined;
  return (count) =>
    transport.closed ? 0 : send(batch.buffer, batch.offsets, batch.lengths, count, port, host);
}

/** An RFC 8285 one-byte header extension block holding a single element. */
function oneByteExtension(id: number, data: Buffer): Buffer {
  const length = Math.ceil((1 + data.length) / 4);
  const out = Buffer.alloc(4 + length * 4);
  out.writeUInt16BE(0xbede, 0);
  out.writeUInt16BE(length, 2);
  out[4] = (id << 4) | (data.length - 1);
  data.copy(out, 5);
  return out;
}
