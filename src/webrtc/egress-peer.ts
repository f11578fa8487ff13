// WHEP egress: a sendonly werift peer; the caller supplies packetized H.264 (or VP8)/Opus RTP payloads.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  PictureLossIndication,
  type RTCRtpTransceiver,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtpHeader,
  RtpPacket,
  useSdesMid,
} from 'werift';
import { DirectRtpSender } from './direct-rtp-sender.ts';
import type { IcePatchResult } from './ice-patch.ts';
import {
  answerCodecs,
  type NegotiatedCodec,
  type PeerOptions,
  PeerSession,
  type PeerState,
  type StateListener,
  transceiverAt,
} from './peer-session.ts';
import { OfferRejectedError, pickH264ForSending, planOffer, rewriteOffer } from './sdp.ts';
import { preferAesCm, srtpProfileOf } from './werift-srtp.ts';

export interface EgressPeerOptions extends PeerOptions {
  /**
   * profile-level-id of the stream we will send (e.g. from its SPS). When the viewer offers several
   * H.264 variants, the one with the same profile is answered; otherwise constrained baseline
   * (42e0xx), otherwise the first packetization-mode=1 variant.
   */
  h264ProfileLevelId?: string;
  /** msid stream id shared by both tracks, so players see one MediaStream. Default: a random UUID. */
  streamId?: string;
}

export type KeyframeRequestListener = (kind: 'pli' | 'fir') => void;

export interface EgressTrackStats {
  ssrc: number;
  packetsSent: number;
  bytesSent: number;
  /** Packets handed to send*() before DTLS was up (or after close); werift drops them. */
  packetsDropped: number;
  nacksReceived: number;
  /** Packets resent in answer to NACKs (from the direct path's history, or werift's). */
  retransmittedPackets: number;
  /** From the viewer's receiver reports, when one has arrived. */
  remotePacketsLost?: number;
  remoteFractionLost?: number;
  roundTripTimeSeconds?: number;
}

export interface EgressStats {
  video: EgressTrackStats & { plisReceived: number; firsReceived: number };
  audio?: EgressTrackStats;
}

/** PLI and FIR both reach onKeyframeRequest; NACKs are answered by werift's sender from its history. */
const VIDEO_FEEDBACK = ['nack', 'nack pli', 'ccm fir'] as const;

/** RFC 5104 FMT for FIR; werift parses FIR but does not export its class. */
const FIR_FORMAT = 4;

function firTargets(feedback: object): number[] {
  const entries = (feedback as { fir?: { ssrc: number }[] }).fir;
  return Array.isArray(entries) ? entries.map((entry) => entry.ssrc) : [];
}

/**
 * Which path RTP takes to the viewer: `direct` (our SRTP send, src/webrtc/direct-rtp-sender.ts,
 * falling back to werift's where it cannot) or `werift` (RTCRtpSender.sendRtp), from
 * LPGW_EGRESS_SEND_PATH; for benchmarks and as an escape hatch.
 */
export function egressSendPath(): 'direct' | 'werift' {
  return process.env.LPGW_EGRESS_SEND_PATH === 'werift' ? 'werift' : 'direct';
}

/**
 * Which SRTP profile egress peers prefer, from LPGW_EGRESS_SRTP: `cm` (AES_CM_128_HMAC_SHA1_80,
 * the default: the direct send path's cheapest, docs/performance.md) or `gcm` (werift's own
 * preference and DTLS role, for A/B benchmarks and as an escape hatch).
 */
export function egressSrtpPreference(): 'cm' | 'gcm' {
  return process.env.LPGW_EGRESS_SRTP === 'gcm' ? 'gcm' : 'cm';
}

class SendTrack {
  packets = 0;
  bytes = 0;
  dropped = 0;
  nacks = 0;
  /** Created on the first send (werift knows the negotiated extensions by then). */
  direct: DirectRtpSender | undefined | null = null;
  lastPath: 'direct' | 'werift' | undefined;
  constructor(
    readonly transceiver: RTCRtpTransceiver,
    readonly codec: NegotiatedCodec,
  ) {}
}

export class EgressPeer {
  readonly answerSdp: string;
  readonly videoCodec: NegotiatedCodec;
  /** 'vp8' for a viewer that offered no H.264. */
  readonly videoCodecName: 'h264' | 'vp8';
  readonly audioCodec: NegotiatedCodec | undefined;
  readonly #session: PeerSession;
  readonly #video: SendTrack;
  readonly #audio: SendTrack | undefined;
  readonly #log: Logger | undefined;
  readonly #keyframeListeners = new Set<KeyframeRequestListener>();
  #plis = 0;
  #firs = 0;

  private constructor(
    session: PeerSession,
    answerSdp: string,
    video: SendTrack,
    audio: SendTrack | undefined,
    log: Logger | undefined,
  ) {
    this.#session = session;
    this.answerSdp = answerSdp;
    this.#video = video;
    this.#audio = audio;
    this.videoCodec = video.codec;
    this.videoCodecName = video.codec.mimeType === 'video/VP8' ? 'vp8' : 'h264';
    this.audioCodec = audio?.codec;
    this.#log = log;
    const videoSender = video.transceiver.sender;
    // werift's sender answers NACKs only from its own history, which the direct path leaves empty.
    videoSender.onGenericNack.subscribe((nack) => {
      video.nacks++;
      video.direct?.resend(nack.lost);
    });
    audio?.transceiver.sender.onGenericNack.subscribe((nack) => {
      audio.nacks++;
      audio.direct?.resend(nack.lost);
    });
    // werift routes PLI by the viewer's SSRC first and FIR not at all, so read feedback off the transport.
    videoSender.dtlsTransport.onRtcp.subscribe((packet: RtcpPacket) => this.#onRtcp(packet));
  }

  /**
   * Answers a WHEP (recvonly) offer. Throws OfferRejectedError (400/406) for an offer that cannot
   * receive H.264 packetization-mode=1. The answer is complete (ICE gathering finished or timed out).
   */
  static async create(offerSdp: string, opts: EgressPeerOptions = {}): Promise<EgressPeer> {
    const result = planOffer(offerSdp, 'view');
    if (!result.ok) throw new OfferRejectedError(result.status, result.reason);
    const { plan } = result;
    // A viewer that offers no H.264 gets VP8 (planOffer picked it), encoded by the caller.
    const vp8 = plan.video.codec === 'vp8';
    const h264 = vp8 ? plan.video.codecs[0] : pickH264ForSending(plan.video.codecs, opts.h264ProfileLevelId);
    const opus = plan.audio?.codecs[0];
    const rewritten = rewriteOffer(plan, {
      video: { payloadTypes: [h264.payloadType], rtcpFeedback: VIDEO_FEEDBACK },
      audio: opus && { payloadTypes: [opus.payloadType], rtcpFeedback: [] },
    });
    const videoCodec: NegotiatedCodec = {
      payloadType: h264.payloadType,
      mimeType: vp8 ? 'video/VP8' : 'video/H264',
      clockRate: 90000,
      fmtp: h264.fmtpLine,
    };
    const audioCodec: NegotiatedCodec | undefined = opus && {
      payloadType: opus.payloadType,
      mimeType: 'audio/opus',
      clockRate: 48000,
      channels: 2,
      fmtp: opus.fmtpLine,
    };
    const streamId = opts.streamId ?? randomUUID();
    let video: SendTrack | undefined;
    let audio: SendTrack | undefined;
    const { session, answerSdp } = await PeerSession.answer(
      {
        offerSdp: rewritten.sdp,
        codecs: answerCodecs(rewritten),
        // The mid extension lets a browser demultiplex even if it ignores our a=ssrc lines.
        headerExtensions: { video: [useSdesMid()], audio: [useSdesMid()] },
        prepare: (pc) => {
          const sending = (index: number) => {
            const transceiver = transceiverAt(pc, index);
            // werift made this transceiver recvonly when it read the offer; we only send on it.
            transceiver.setDirection('sendonly');
            transceiver.sender.streamId = streamId;
            return transceiver;
          };
          video = new SendTrack(sending(plan.video.section.index), videoCodec);
          if (plan.audio && audioCodec) audio = new SendTrack(sending(plan.audio.section.index), audioCodec);
          if (egressSrtpPreference() === 'cm') preferAesCm(pc);
        },
      },
      opts,
    );
    if (!video) throw new Error('unreachable: video transceiver not prepared');
    return new EgressPeer(session, answerSdp, video, audio, opts.logger);
  }

  get state(): PeerState {
    return this.#session.state;
  }

  /** The SRTP profile the viewer's DTLS handshake settled on; undefined before it has. */
  get srtpProfile(): 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_128_GCM' | undefined {
    return srtpProfileOf(this.#video.transceiver.sender.dtlsTransport);
  }

  /** The ICE session's entity-tag (quoted) for ETag; it changes with each ICE restart. */
  get etag(): string {
    return this.#session.etag;
  }

  /** Date.now() when the latest ICE restart began (media pauses until it connects). */
  get lastIceRestartAt(): number | undefined {
    return this.#session.lastIceRestartAt;
  }

  /**
   * RFC 9725 PATCH (`If-Match` header, application/trickle-ice-sdpfrag body): trickled candidates,
   * or an ICE restart that keeps the media flowing. Throws IcePatchError with the HTTP status.
   */
  patchIce(ifMatch: string | undefined, body: string): Promise<IcePatchResult> {
    return this.#session.patchIce(ifMatch, body);
  }

  /** Date.now() of the last datagram from the viewer (STUN, RTCP, ...). */
  get lastInboundAt(): number | undefined {
    return this.#session.lastInboundAt;
  }

  /** Our SSRC for video; fixed for the life of this peer. */
  get videoSsrc(): number {
    return this.#video.transceiver.sender.ssrc;
  }

  /** The path video RTP took on the last send: ours, werift's, or none yet. */
  get videoSendPath(): 'direct' | 'werift' | undefined {
    return this.#video.lastPath;
  }

  get audioSsrc(): number | undefined {
    return this.#audio?.transceiver.sender.ssrc;
  }

  /**
   * Sends one H.264 RTP payload. seq and timestamp reach the wire unchanged (werift only adds its
   * offset after a track replacement, which we never do); SSRC and payload type are ours. The payload
   * is kept (not copied) in werift's NACK history: do not reuse its memory. Dropped before 'connected';
   * returns whether the packet went out (false: dropped, counted in `packetsDropped`).
   */
  sendVideo(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    return this.#send(this.#video, payload, seq, timestamp, marker);
  }

  /**
   * Sends a video frame's packets (sequence numbers firstSeq, firstSeq+1, …) with one timestamp: on the
   * direct path in as few system calls as the socket allows. false when nothing could be sent.
   */
  sendVideoFrame(
    packets: readonly { payload: Uint8Array; marker: boolean }[],
    firstSeq: number,
    timestamp: number,
  ): boolean {
    const track = this.#video;
    const sender = track.transceiver.sender;
    if (this.state === 'connected' && sender.dtlsTransport.state === 'connected') {
      if (this.#direct(track)?.sendFrame(packets, firstSeq, timestamp)) {
        track.lastPath = 'direct';
        track.packets += packets.length;
        for (const packet of packets) track.bytes += packet.payload.byteLength;
        return true;
      }
    }
    for (let i = 0; i < packets.length; i++) {
      if (!this.#send(track, packets[i].payload, (firstSeq + i) & 0xffff, timestamp, packets[i].marker))
        return false;
    }
    return true;
  }

  /** Sends one Opus RTP payload (same rules as sendVideo); ignored when the viewer took no audio. */
  sendAudio(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    return this.#audio ? this.#send(this.#audio, payload, seq, timestamp, marker) : false;
  }

  /** True while packets handed to send*() go out: ICE and DTLS are up (SRTP keys exist). */
  get canSend(): boolean {
    return this.state === 'connected' && this.#video.transceiver.sender.dtlsTransport.state === 'connected';
  }

  /**
   * Bytes waiting in this peer's UDP socket queue (libuv's, in user space) because the kernel's send
   * buffer is full: the one place a slow uplink makes sends pile up (werift's send path is
   * synchronous down to dgram's send()). 0 before ICE has a nominated pair.
   */
  sendQueueBytes(): number {
    const connection = this.#video.transceiver.sender.dtlsTransport.iceTransport.connection;
    // A UDP pair's protocol holds werift's UdpTransport, whose `socket` is the dgram socket.
    const protocol = connection.nominated?.protocol as
      | { transport?: { socket?: { getSendQueueSize?: () => number } } }
      | undefined;
    return protocol?.transport?.socket?.getSendQueueSize?.() ?? 0;
  }

  /** The viewer asked for a keyframe (RTCP PLI or FIR). Not throttled. Returns an unsubscribe function. */
  onKeyframeRequest(listener: KeyframeRequestListener): () => void {
    this.#keyframeListeners.add(listener);
    return () => this.#keyframeListeners.delete(listener);
  }

  onStateChange(listener: StateListener): () => void {
    return this.#session.onStateChange(listener);
  }

  stats(): EgressStats {
    return {
      video: { ...this.#trackStats(this.#video), plisReceived: this.#plis, firsReceived: this.#firs },
      audio: this.#audio ? this.#trackStats(this.#audio) : undefined,
    };
  }

  /** Closes the peer connection and releases its UDP sockets and timers. Idempotent. */
  close(): Promise<void> {
    this.#keyframeListeners.clear();
    return this.#session.close();
  }

  /** The track's direct sender, made on first use (undefined: werift's path). */
  #direct(track: SendTrack): DirectRtpSender | undefined {
    if (track.direct === null) {
      track.direct =
        egressSendPath() === 'direct'
          ? DirectRtpSender.create(track.transceiver.sender, track.codec.payloadType)
          : undefined;
    }
    return track.direct;
  }

  #send(track: SendTrack, payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    const sender = track.transceiver.sender;
    if (this.state !== 'connected' || sender.dtlsTransport.state !== 'connected') {
      track.dropped++;
      return false;
    }
    if (this.#direct(track)?.send(payload, seq, timestamp, marker)) {
      track.lastPath = 'direct';
      track.packets++;
      track.bytes += payload.byteLength;
      return true;
    }
    const body = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const header = new RtpHeader({
      sequenceNumber: seq & 0xffff,
      timestamp: timestamp >>> 0,
      marker,
      payloadType: track.codec.payloadType,
      ssrc: sender.ssrc,
    });
    track.lastPath = 'werift';
    track.packets++;
    track.bytes += body.length;
    sender.sendRtp(new RtpPacket(header, body)).catch((err: unknown) => {
      this.#log?.debug({ err }, 'webrtc: RTP not sent');
    });
    return true;
  }

  #onRtcp(packet: RtcpPacket): void {
    if (packet.type !== RtcpPayloadSpecificFeedback.type) return;
    const { feedback } = packet;
    const ssrc = this.videoSsrc;
    let kind: 'pli' | 'fir' | undefined;
    if (feedback instanceof PictureLossIndication && feedback.mediaSsrc === ssrc) kind = 'pli';
    else if (feedback.count === FIR_FORMAT && firTargets(feedback).includes(ssrc)) kind = 'fir';
    if (!kind) return;
    if (kind === 'pli') this.#plis++;
    else this.#firs++;
    for (const listener of [...this.#keyframeListeners]) {
      try {
        listener(kind);
      } catch (err) {
        this.#log?.error({ err }, 'webrtc: keyframe listener threw');
      }
    }
  }

  #trackStats(track: SendTrack): EgressTrackStats {
    const sender = track.transceiver.sender;
    const records = sender.collectStats(Date.now()) as {
      type: string;
      retransmittedPacketsSent?: number;
      packetsLost?: number;
      fractionLost?: number;
      roundTripTime?: number;
    }[];
    const outbound = records.find((r) => r.type === 'outbound-rtp');
    const remote = records.find((r) => r.type === 'remote-inbound-rtp');
    return {
      ssrc: sender.ssrc,
      packetsSent: track.packets,
      bytesSent: track.bytes,
      packetsDropped: track.dropped,
      nacksReceived: track.nacks,
      retransmittedPackets: (outbound?.retransmittedPacketsSent ?? 0) + (track.direct?.retransmitted ?? 0),
      remotePacketsLost: remote?.packetsLost,
      remoteFractionLost: remote?.fractionLost,
      roundTripTimeSeconds: remote?.roundTripTime,
    };
  }
}
