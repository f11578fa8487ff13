// werift test clients: a WHIP publisher and a WHEP viewer (also usable in-process without HTTP),
// plus a minimal H.264 Annex-B splitter, RTP packetizer and reassembler so tests need nothing else.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  GenericNack,
  PictureLossIndication,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpTransportLayerFeedback,
  RtpHeader,
  RtpPacket,
  useNACK,
  usePLI,
} from 'werift';
import { LOOPBACK_NETWORK, type PeerNetworkOptions } from '../../src/webrtc/index.ts';
import { weriftNetworkConfig } from '../../src/webrtc/network.ts';

// ---------------------------------------------------------------------------------------------
// H.264 and RTP payload helpers

export interface RtpPayload {
  payload: Uint8Array;
  marker: boolean;
}

/** One frame (video access unit or audio packet) as the RTP payloads that carry it. */
export interface RtpFrame {
  timestamp: number;
  payloads: RtpPayload[];
}

export interface ReceivedPacket {
  kind: 'video' | 'audio';
  ssrc: number;
  payloadType: number;
  seq: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
  receivedAt: number;
}

export interface AccessUnit {
  timestamp: number;
  nalus: Buffer[];
  keyframe: boolean;
}

const START_CODE = Buffer.from([0, 0, 0, 1]);
const run = promisify(execFile);

/** A testsrc2 clip as an H.264 Annex-B elementary stream (no B-frames, yuv420p). */
export async function makeH264Clip(
  opts: { seconds?: number; fps?: number; gop?: number; size?: string } = {},
) {
  const { seconds = 2, fps = 30, gop = 30, size = '320x240' } = opts;
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-webrtc-'));
  try {
    const out = join(dir, 'clip.h264');
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}`],
      ...['-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'],
      ...['-bf', '0', '-g', String(gop), '-f', 'h264', out],
    ]);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** ffmpeg's per-frame MD5s of the decoded pictures of an Annex-B H.264 stream. */
export async function decodedFrameHashes(annexB: Uint8Array): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-webrtc-'));
  try {
    const input = join(dir, 'in.h264');
    await writeFile(input, annexB);
    const { stdout } = await run(
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-f', 'h264', '-i', input, '-f', 'framemd5', '-'],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    return stdout
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => line.split(',').at(-1)?.trim() ?? '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** NAL units of an Annex-B byte stream, without start codes. */
export function splitNalUnits(annexB: Uint8Array): Buffer[] {
  const data = Buffer.from(annexB.buffer, annexB.byteOffset, annexB.byteLength);
  const starts: { at: number; size: number }[] = [];
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0) {
      if (data[i + 2] === 1) {
        starts.push({ at: i, size: 3 });
        i += 2;
      } else if (data[i + 2] === 0 && data[i + 3] === 1) {
        starts.push({ at: i, size: 4 });
        i += 3;
      }
    }
  }
  return starts
    .map((start, n) =>
      data.subarray(start.at + start.size, n + 1 < starts.length ? starts[n + 1].at : data.length),
    )
    .filter((nalu) => nalu.length > 0);
}

/**
 * Groups NAL units into access units: a new one starts at an AUD/SPS/PPS/SEI after a slice, or at a
 * slice whose first_mb_in_slice is 0 (first bit of the slice header set) after a slice.
 */
export function splitAccessUnits(annexB: Uint8Array): Buffer[][] {
  const units: Buffer[][] = [];
  let current: Buffer[] = [];
  let hasSlice = false;
  for (const nalu of splitNalUnits(annexB)) {
    const type = nalu[0] & 0x1f;
    const isSlice = type === 1 || type === 5;
    const startsUnit = isSlice ? (nalu[1] & 0x80) !== 0 : [6, 7, 8, 9].includes(type);
    if (hasSlice && startsUnit) {
      units.push(current);
      current = [];
      hasSlice = false;
    }
    current.push(nalu);
    if (isSlice) hasSlice = true;
  }
  if (current.length > 0) units.push(current);
  return units;
}

/** RFC 6184 mode 1, minimal: single NAL unit packets, FU-A for NALs above `mtu`. Marker on the last. */
export function packetizeAccessUnit(nalus: Uint8Array[], mtu = 1200): RtpPayload[] {
  const out: RtpPayload[] = [];
  for (const nalu of nalus) {
    if (nalu.length <= mtu) {
      out.push({ payload: nalu, marker: false });
      continue;
    }
    const indicator = (nalu[0] & 0xe0) | 28;
    const type = nalu[0] & 0x1f;
    const body = nalu.subarray(1);
    const chunk = mtu - 2;
    for (let offset = 0; offset < body.length; offset += chunk) {
      const start = offset === 0;
      const end = offset + chunk >= body.length;
      const header = (start ? 0x80 : 0) | (end ? 0x40 : 0) | type;
      out.push({
        payload: Buffer.concat([Buffer.from([indicator, header]), body.subarray(offset, offset + chunk)]),
        marker: false,
      });
    }
  }
  if (out.length > 0) out[out.length - 1].marker = true;
  return out;
}

/** An Annex-B clip as RTP frames at `fps` (90 kHz timestamps from `firstTimestamp`). */
export function h264Frames(annexB: Uint8Array, fps = 30, mtu = 1200, firstTimestamp = 0): RtpFrame[] {
  return splitAccessUnits(annexB).map((nalus, i) => ({
    timestamp: (firstTimestamp + Math.round((i * 90000) / fps)) >>> 0,
    payloads: packetizeAccessUnit(nalus, mtu),
  }));
}

/**
 * Opus-shaped RTP frames (20 ms, 960 ticks at 48 kHz): a TOC byte for one 20 ms CELT frame followed by
 * a recognisable pattern. Not decodable audio; it exercises the transport only.
 */
export function syntheticOpusFrames(count: number, size = 80): RtpFrame[] {
  return Array.from({ length: count }, (_, i) => {
    const payload = Buffer.alloc(size, i & 0xff);
    payload[0] = 0xfc;
    payload.writeUInt16BE(i & 0xffff, 1);
    return { timestamp: i * 960, payloads: [{ payload, marker: false }] };
  });
}

/** Reassembles H.264 access units from in-order RTP (single NAL, STAP-A, FU-A); drops units with gaps. */
export class H264Reassembler {
  framesDropped = 0;
  #nalus: Buffer[] = [];
  #fu: Buffer[] | undefined;
  #timestamp: number | undefined;
  #lastSeq: number | undefined;
  #broken = false;

  /** Returns the access unit this packet completes, if any. */
  push(payload: Buffer, seq: number, timestamp: number, marker: boolean): AccessUnit | undefined {
    let done: AccessUnit | undefined;
    if (this.#timestamp !== undefined && timestamp !== this.#timestamp) done = this.#finish();
    if (this.#lastSeq !== undefined && ((this.#lastSeq + 1) & 0xffff) !== seq) this.#broken = true;
    this.#lastSeq = seq;
    this.#timestamp = timestamp;
    if (payload.length > 0) this.#depacketize(payload);
    if (marker) done = this.#finish() ?? done;
    return done;
  }

  #depacketize(payload: Buffer): void {
    const type = payload[0] & 0x1f;
    if (type >= 1 && type <= 23) {
      this.#nalus.push(payload);
    } else if (type === 24) {
      for (let offset = 1; offset + 2 <= payload.length; ) {
        const size = payload.readUInt16BE(offset);
        this.#nalus.push(payload.subarray(offset + 2, offset + 2 + size));
        offset += 2 + size;
      }
    } else if (type === 28) {
      const header = payload[1];
      if (header & 0x80) this.#fu = [Buffer.from([(payload[0] & 0xe0) | (header & 0x1f)])];
      if (!this.#fu) {
        this.#broken = true;
        return;
      }
      this.#fu.push(payload.subarray(2));
      if (header & 0x40) {
        this.#nalus.push(Buffer.concat(this.#fu));
        this.#fu = undefined;
      }
    } else {
      this.#broken = true;
    }
  }

  #finish(): AccessUnit | undefined {
    const nalus = this.#nalus;
    const timestamp = this.#timestamp ?? 0;
    const broken = this.#broken || this.#fu !== undefined;
    this.#nalus = [];
    this.#fu = undefined;
    this.#timestamp = undefined;
    this.#broken = false;
    if (nalus.length === 0) return undefined;
    if (broken) {
      this.framesDropped++;
      return undefined;
    }
    return { timestamp, nalus, keyframe: nalus.some((n) => (n[0] & 0x1f) === 5) };
  }
}

export function toAnnexB(units: AccessUnit[]): Buffer {
  return Buffer.concat(units.flatMap((unit) => unit.nalus.flatMap((nalu) => [START_CODE, nalu])));
}

// ---------------------------------------------------------------------------------------------
// Shared werift plumbing

export interface TestPeerOptions {
  /** Default LOOPBACK_NETWORK: host candidates on 127.0.0.1 only. */
  network?: PeerNetworkOptions;
  /** profile-level-id offered for H.264 (packetization-mode=1). Default 42e01f. */
  h264ProfileLevelId?: string;
  /** Offer VP8 (a browser without H.264, such as Firefox without OpenH264) or AV1 instead of H.264. */
  videoCodec?: 'h264' | 'vp8' | 'av1';
  audio?: boolean;
  /** More werift configuration (e.g. ICE-TCP), applied over the network options. */
  rtcConfig?: Partial<RTCPeerConnectionConfig>;
}

function testPeer(opts: TestPeerOptions): RTCPeerConnection {
  return new RTCPeerConnection({
    ...weriftNetworkConfig(opts.network ?? LOOPBACK_NETWORK),
    ...opts.rtcConfig,
    // max-bundle: one ICE transport from the start (werift leaks the socket of transports dropped by BUNDLE).
    bundlePolicy: 'max-bundle',
    codecs: {
      video: [
        opts.videoCodec === 'vp8' || opts.videoCodec === 'av1'
          ? new RTCRtpCodecParameters({
              mimeType: opts.videoCodec === 'vp8' ? 'video/VP8' : 'video/AV1',
              clockRate: 90000,
              rtcpFeedback: [useNACK(), usePLI()],
            })
          : new RTCRtpCodecParameters({
              mimeType: 'video/H264',
              clockRate: 90000,
              rtcpFeedback: [useNACK(), usePLI()],
              parameters: `profile-level-id=${opts.h264ProfileLevelId ?? '42e01f'};packetization-mode=1;level-asymmetry-allowed=1`,
            }),
      ],
      audio: [
        new RTCRtpCodecParameters({
          mimeType: 'audio/opus',
          clockRate: 48000,
          channels: 2,
          parameters: 'minptime=10;useinbandfec=1',
        }),
      ],
    },
  });
}

async function gatheredOffer(pc: RTCPeerConnection): Promise<string> {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise<void>((resolve) => {
      pc.iceGatheringStateChange.subscribe((state) => {
        if (state === 'complete') resolve();
      });
    });
  }
  const local = pc.localDescription;
  if (!local) throw new Error('no local description');
  return local.sdp;
}

function waitConnected(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unSubscribe();
      reject(new Error(`not connected after ${timeoutMs} ms (state ${pc.connectionState})`));
    }, timeoutMs);
    const { unSubscribe } = pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      } else if (state === 'failed' || state === 'closed') {
        clearTimeout(timer);
        unSubscribe();
        reject(new Error(`connection ${state}`));
      }
    });
  });
}

async function postSdp(url: string, sdp: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', ...headers },
    body: sdp,
  });
  const body = await response.text();
  if (response.status !== 201) throw new Error(`POST ${url}: ${response.status} ${body}`);
  const location = response.headers.get('location');
  if (!location) throw new Error(`POST ${url}: 201 without Location`);
  return { answerSdp: body, resourceUrl: new URL(location, url).toString() };
}

async function deleteResource(url: string | undefined, headers: Record<string, string> = {}): Promise<void> {
  if (!url) return;
  try {
    await fetch(url, { method: 'DELETE', headers });
  } catch {
    // The server may already be gone; closing the peer is what matters.
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds; throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Open UDP sockets in this process (werift's ICE sockets are the only ones in these tests). */
export function udpSocketCount(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;
}

// ---------------------------------------------------------------------------------------------
// Publisher

export interface SendOptions {
  video?: RtpFrame[];
  audio?: RtpFrame[];
  /** Pace frames by their timestamps (default true); false sends as fast as possible. */
  realtime?: boolean;
  /** Packet indexes (0-based over all video packets) not to send, to simulate loss. */
  dropVideoPackets?: ReadonlySet<number>;
  /**
   * Resend a dropped packet when the receiver NACKs it, this many ms after the NACK (a late
   * retransmission). Default: dropped packets are lost for good.
   */
  retransmitDroppedAfterMs?: number;
  /** Stop sending (the promise resolves) once aborted: a test that has seen enough. */
  signal?: AbortSignal;
}

export interface PublisherStats {
  videoFrames: number;
  videoPackets: number;
  audioFrames: number;
  audioPackets: number;
  bytes: number;
  keyframeRequests: number;
  /** Sequence numbers the receiver NACKed, in arrival order. */
  nackedSeqs: number[];
}

export interface SentPacket {
  kind: 'video' | 'audio';
  seq: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

/** A werift peer that offers sendonly H.264 (+ Opus) and sends pre-packetized frames. */
export class WeriftPublisher {
  readonly pc: RTCPeerConnection;
  readonly sent: SentPacket[] = [];
  readonly #video: RTCRtpTransceiver;
  readonly #audio: RTCRtpTransceiver | undefined;
  readonly #stats: PublisherStats = {
    videoFrames: 0,
    videoPackets: 0,
    audioFrames: 0,
    audioPackets: 0,
    bytes: 0,
    keyframeRequests: 0,
    nackedSeqs: [],
  };
  readonly #keyframeListeners = new Set<() => void>();
  #videoSeq: number;
  #audioSeq: number;

  constructor(opts: TestPeerOptions & { firstSeq?: number } = {}) {
    this.pc = testPeer(opts);
    this.#video = this.pc.addTransceiver('video', { direction: 'sendonly' });
    if (opts.audio ?? true) this.#audio = this.pc.addTransceiver('audio', { direction: 'sendonly' });
    this.#videoSeq = opts.firstSeq ?? Math.floor(Math.random() * 0x10000);
    this.#audioSeq = Math.floor(Math.random() * 0x10000);
    const sender = this.#video.sender;
    sender.onGenericNack.subscribe((nack) => {
      this.#stats.nackedSeqs.push(...nack.lost);
    });
    sender.dtlsTransport.onRtcp.subscribe((packet: RtcpPacket) => {
      if (packet.type !== RtcpPayloadSpecificFeedback.type) return;
      const { feedback } = packet;
      if (feedback instanceof PictureLossIndication && feedback.mediaSsrc === sender.ssrc) {
        this.#stats.keyframeRequests++;
        for (const listener of this.#keyframeListeners) listener();
      }
    });
  }

  get videoSsrc(): number {
    return this.#video.sender.ssrc;
  }

  createOffer(): Promise<string> {
    return gatheredOffer(this.pc);
  }

  // As long as the gateway's own connect timeout: on a loaded 2-core machine ICE + DTLS can take seconds.
  async applyAnswer(answerSdp: string, timeoutMs = 15_000): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    await waitConnected(this.pc, timeoutMs);
  }

  onKeyframeRequest(listener: () => void): () => void {
    this.#keyframeListeners.add(listener);
    return () => this.#keyframeListeners.delete(listener);
  }

  stats(): PublisherStats {
    return { ...this.#stats, nackedSeqs: [...this.#stats.nackedSeqs] };
  }

  /** Sends the frames, video and audio interleaved by time; resolves when all are sent. */
  async send(opts: SendOptions): Promise<PublisherStats> {
    type Event = { at: number; kind: 'video' | 'audio'; frame: RtpFrame };
    const events: Event[] = [];
    const add = (kind: 'video' | 'audio', frames: RtpFrame[] | undefined, clockRate: number) => {
      if (!frames?.length) return;
      const first = frames[0].timestamp;
      for (const frame of frames) {
        events.push({ at: (((frame.timestamp - first) >>> 0) / clockRate) * 1000, kind, frame });
      }
    };
    add('video', opts.video, 90000);
    if (this.#audio) add('audio', opts.audio, 48000);
    events.sort((a, b) => a.at - b.at);
    const realtime = opts.realtime ?? true;
    const started = performance.now();
    let videoIndex = 0;
    const held = new Map<number, RtpPacket>();
    const retransmitAfter = opts.retransmitDroppedAfterMs;
    const offNack =
      retransmitAfter === undefined
        ? undefined
        : this.#video.sender.onGenericNack.subscribe((nack) => {
            for (const seq of nack.lost) {
              const packet = held.get(seq);
              if (!packet) continue;
              held.delete(seq);
              setTimeout(() => void this.#video.sender.sendRtp(packet).catch(() => {}), retransmitAfter);
            }
          }).unSubscribe;
    for (const event of events) {
      if (opts.signal?.aborted) break;
      if (realtime) {
        const wait = started + event.at - performance.now();
        if (wait > 1) await sleep(wait);
      }
      const transceiver = event.kind === 'video' ? this.#video : this.#audio;
      if (!transceiver) continue;
      for (const { payload, marker } of event.frame.payloads) {
        const seq = event.kind === 'video' ? this.#videoSeq : this.#audioSeq;
        if (event.kind === 'video') this.#videoSeq = (seq + 1) & 0xffff;
        else this.#audioSeq = (seq + 1) & 0xffff;
        const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
        const header = new RtpHeader({ sequenceNumber: seq, timestamp: event.frame.timestamp, marker });
        if (event.kind === 'video' && opts.dropVideoPackets?.has(videoIndex++)) {
          if (retransmitAfter !== undefined) held.set(seq, new RtpPacket(header, body));
          continue;
        }
        await transceiver.sender.sendRtp(new RtpPacket(header, body));
        this.sent.push({ kind: event.kind, seq, timestamp: event.frame.timestamp, marker, payload });
        this.#stats.bytes += body.length;
        if (event.kind === 'video') this.#stats.videoPackets++;
        else this.#stats.audioPackets++;
      }
      if (event.kind === 'video') this.#stats.videoFrames++;
      else this.#stats.audioFrames++;
    }
    // Late retransmissions still due go out before we report.
    if (offNack) {
      await sleep((retransmitAfter ?? 0) + 50);
      offNack();
    }
    return this.stats();
  }

  close(): Promise<void> {
    return this.pc.close();
  }
}

export interface WhipClientOptions extends TestPeerOptions {
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  connectTimeoutMs?: number;
}

/** WHIP publisher: POSTs its offer, applies the answer, sends media; close() DELETEs the resource. */
export class WhipTestPublisher extends WeriftPublisher {
  resourceUrl: string | undefined;
  answerSdp: string | undefined;
  readonly #headers: Record<string, string>;

  private constructor(opts: WhipClientOptions) {
    super(opts);
    this.#headers = opts.headers ?? {};
  }

  static async connect(whipUrl: string, opts: WhipClientOptions = {}): Promise<WhipTestPublisher> {
    const publisher = new WhipTestPublisher(opts);
    try {
      const { answerSdp, resourceUrl } = await postSdp(
        whipUrl,
        await publisher.createOffer(),
        publisher.#headers,
      );
      publisher.resourceUrl = resourceUrl;
      publisher.answerSdp = answerSdp;
      await publisher.applyAnswer(answerSdp, opts.connectTimeoutMs);
      return publisher;
    } catch (err) {
      await publisher.close();
      throw err;
    }
  }

  override async close(): Promise<void> {
    await deleteResource(this.resourceUrl, this.#headers);
    this.resourceUrl = undefined;
    await super.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Viewer

/** A werift peer that offers recvonly H.264 (+ Opus) and collects what arrives. */
export class WeriftViewer {
  readonly pc: RTCPeerConnection;
  readonly packets: ReceivedPacket[] = [];
  readonly frames: AccessUnit[] = [];
  readonly #video: RTCRtpTransceiver;
  readonly #audio: RTCRtpTransceiver | undefined;
  readonly #reassembler = new H264Reassembler();
  readonly #frameListeners = new Set<(unit: AccessUnit) => void>();
  #videoSsrc: number | undefined;

  constructor(opts: TestPeerOptions = {}) {
    this.pc = testPeer(opts);
    this.#video = this.pc.addTransceiver('video', { direction: 'recvonly' });
    if (opts.audio ?? true) this.#audio = this.pc.addTransceiver('audio', { direction: 'recvonly' });
    this.#listen(this.#video, 'video');
    if (this.#audio) this.#listen(this.#audio, 'audio');
  }

  get videoPackets(): ReceivedPacket[] {
    return this.packets.filter((p) => p.kind === 'video');
  }

  get audioPackets(): ReceivedPacket[] {
    return this.packets.filter((p) => p.kind === 'audio');
  }

  get framesDropped(): number {
    return this.#reassembler.framesDropped;
  }

  createOffer(): Promise<string> {
    return gatheredOffer(this.pc);
  }

  // As long as the gateway's own connect timeout: on a loaded 2-core machine ICE + DTLS can take seconds.
  async applyAnswer(answerSdp: string, timeoutMs = 15_000): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    await waitConnected(this.pc, timeoutMs);
  }

  onFrame(listener: (unit: AccessUnit) => void): () => void {
    this.#frameListeners.add(listener);
    return () => this.#frameListeners.delete(listener);
  }

  /** Resolves once `count` video packets have arrived. */
  async waitForVideoPackets(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.videoPackets.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.videoPackets.length}/${count} video packets`);
      await sleep(10);
    }
  }

  /** The received H.264 as an Annex-B elementary stream, from the first keyframe on (for ffmpeg). */
  annexB(): Buffer {
    const first = this.frames.findIndex((unit) => unit.keyframe);
    return first < 0 ? Buffer.alloc(0) : toAnnexB(this.frames.slice(first));
  }

  /** Sends an RTCP PLI for the video SSRC (no-op before the first video packet). */
  requestKeyframe(): Promise<void> {
    return this.#sendFeedback((senderSsrc, mediaSsrc) => [
      new RtcpPayloadSpecificFeedback({ feedback: new PictureLossIndication({ senderSsrc, mediaSsrc }) }),
    ]);
  }

  /** Sends a raw RTCP FIR (RFC 5104) for the video SSRC; werift has no FIR sender. */
  async sendFir(sequenceNumber = 1): Promise<void> {
    const ssrc = this.#videoSsrc;
    if (ssrc === undefined) return;
    const receiver = this.#video.receiver;
    const fir = Buffer.alloc(20);
    fir[0] = 0x80 | 4; // V=2, FMT=4
    fir[1] = 206; // PSFB
    fir.writeUInt16BE(4, 2); // length in 32-bit words minus one
    fir.writeUInt32BE(receiver.rtcpSsrc, 4);
    fir.writeUInt32BE(0, 8); // media source SSRC: unused for FIR
    fir.writeUInt32BE(ssrc, 12);
    fir[16] = sequenceNumber & 0xff;
    await receiver.dtlsTransport.sendRtcp([{ serialize: () => fir } as unknown as RtcpPacket]);
  }

  /** Sends an RTCP generic NACK for these video sequence numbers. */
  sendNack(lost: number[]): Promise<void> {
    return this.#sendFeedback((senderSsrc, mediaSourceSsrc) => [
      new RtcpTransportLayerFeedback({ feedback: new GenericNack({ senderSsrc, mediaSourceSsrc, lost }) }),
    ]);
  }

  close(): Promise<void> {
    return this.pc.close();
  }

  async #sendFeedback(build: (senderSsrc: number, mediaSsrc: number) => RtcpPacket[]): Promise<void> {
    const ssrc = this.#videoSsrc;
    if (ssrc === undefined) return;
    const receiver = this.#video.receiver;
    await receiver.dtlsTransport.sendRtcp(build(receiver.rtcpSsrc, ssrc));
  }

  #listen(transceiver: RTCRtpTransceiver, kind: 'video' | 'audio'): void {
    transceiver.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
        const { header, payload } = rtp;
        this.packets.push({
          kind,
          ssrc: header.ssrc,
          payloadType: header.payloadType,
          seq: header.sequenceNumber,
          timestamp: header.timestamp,
          marker: header.marker,
          payload,
          receivedAt: Date.now(),
        });
        if (kind !== 'video') return;
        this.#videoSsrc ??= header.ssrc;
        const unit = this.#reassembler.push(payload, header.sequenceNumber, header.timestamp, header.marker);
        if (!unit) return;
        this.frames.push(unit);
        for (const listener of this.#frameListeners) listener(unit);
      });
    });
  }
}

/** WHEP viewer: POSTs a recvonly offer, applies the answer, collects media; close() DELETEs. */
export class WhepTestViewer extends WeriftViewer {
  resourceUrl: string | undefined;
  answerSdp: string | undefined;
  readonly #headers: Record<string, string>;

  private constructor(opts: WhipClientOptions) {
    super(opts);
    this.#headers = opts.headers ?? {};
  }

  static async connect(whepUrl: string, opts: WhipClientOptions = {}): Promise<WhepTestViewer> {
    const viewer = new WhepTestViewer(opts);
    try {
      const { answerSdp, resourceUrl } = await postSdp(whepUrl, await viewer.createOffer(), viewer.#headers);
      viewer.resourceUrl = resourceUrl;
      viewer.answerSdp = answerSdp;
      await viewer.applyAnswer(answerSdp, opts.connectTimeoutMs);
      return viewer;
    } catch (err) {
      await viewer.close();
      throw err;
    }
  }

  override async close(): Promise<void> {
    await deleteResource(this.resourceUrl, this.#headers);
    this.resourceUrl = undefined;
    await super.close();
  }
}

/**
 * A viewer's access units rebuilt from its packets in (unwrapped) sequence order, duplicates
 * dropped: what a player's jitter buffer hands its decoder, retransmissions in place.
 */
export function framesInSequenceOrder(packets: ReceivedPacket[]): AccessUnit[] {
  let last = packets[0]?.seq ?? 0;
  let unwrapped = last;
  const bySeq = new Map<number, ReceivedPacket>();
  for (const p of packets) {
    unwrapped += ((p.seq - last + 0x8000) & 0xffff) - 0x8000;
    last = p.seq;
    if (!bySeq.has(unwrapped)) bySeq.set(unwrapped, p);
  }
  const reassembler = new H264Reassembler();
  const units: AccessUnit[] = [];
  for (const seq of [...bySeq.keys()].sort((a, b) => a - b)) {
    const p = bySeq.get(seq) as ReceivedPacket;
    const unit = reassembler.push(p.payload, p.seq, p.timestamp, p.marker);
    if (unit) units.push(unit);
  }
  return units;
}
