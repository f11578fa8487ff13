// WHIP ingest: a recvonly werift peer that hands every video (H.264, VP8, VP9 or AV1) and Opus RTP packet to the caller.
import type { Logger } from 'pino';
import {
  GenericNack,
  PictureLossIndication,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  RtcpPayloadSpecificFeedback,
  RtcpTransportLayerFeedback,
  type RtpPacket,
} from 'werift';
import type { IcePatchResult } from './ice-patch.ts';
import { NackGenerator, type NackGeneratorOptions } from './nack-generator.ts';
import {
  answerCodecs,
  type NegotiatedCodec,
  type PeerOptions,
  PeerSession,
  type PeerState,
  type StateListener,
  transceiverAt,
} from './peer-session.ts';
import { OfferRejectedError, planOffer, rewriteOffer, type VideoCodecName } from './sdp.ts';
import { leanReceive } from './werift-receiver.ts';
import { preferAesCm, type SrtpDecryptCounts, srtpProfileOf, useOwnSrtpDecrypt } from './werift-srtp.ts';

const VIDEO_MIME: Record<VideoCodecName, string> = {
  h264: 'video/H264',
  vp8: 'video/VP8',
  vp9: 'video/VP9',
  av1: 'video/AV1',
};

/** Called once per RTP packet, in arrival order (no reordering). */
export type RtpListener = (payload: Buffer, seq: number, timestamp: number, marker: boolean) => void;

export interface IngestPeerOptions extends PeerOptions {
  /** Tuning for the video NACK generator (retry interval, attempts, max age). */
  nack?: Omit<NackGeneratorOptions, 'send'>;
}

export interface IngestTrackStats {
  packetsReceived: number;
  bytesReceived: number;
  /** RFC 3550 cumulative loss as counted by werift's receiver statistics. */
  packetsLost: number;
  /** Generic NACK RTCP packets sent for this track (video only). */
  nacksSent: number;
  ssrc?: number;
}

export interface IngestStats {
  video: IngestTrackStats & {
    plisSent: number;
    /** Packets NACKed (each counted once per NACK naming it). */
    packetsRequested: number;
    /** Missing packets that arrived after all (mostly retransmissions). */
    packetsRecovered: number;
    /** Quickest recent gap → recovery time: the round trip to the publisher. Null before any recovery. */
    nackRttMs: number | null;
    /** How long a missing packet is worth waiting for (see NackGenerator.recoveryWindowMs). */
    nackWindowMs: number;
  };
  audio: IngestTrackStats;
  /** Date.now() of the last RTP packet of either kind. */
  lastPacketAt?: number;
  /** The SRTP profile (null before DTLS settled it) and who decrypted the RTP packets. */
  srtp: {
    profile: 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_128_GCM' | null;
    /** Packets decrypted by the gateway's AES-CM path / by werift (all of them when it is not on). */
    decryptedBy: { gateway: number; werift: number } | null;
  };
}

/** Feedback we answer for ingest video: our NackGenerator sends NACKs, requestKeyframe() sends PLI. */
const VIDEO_FEEDBACK = ['nack', 'nack pli'] as const;

class TrackTap {
  readonly listeners = new Set<RtpListener>();
  packets = 0;
  bytes = 0;
  ssrc: number | undefined;
  constructor(
    readonly transceiver: RTCRtpTransceiver,
    readonly codec: NegotiatedCodec,
  ) {}
}

export class IngestPeer {
  readonly answerSdp: string;
  /** The video payload types accepted in the answer; the offerer sends one of them. */
  readonly videoCodecs: NegotiatedCodec[];
  /** What the publisher sends: H.264 is used as is, VP8/VP9/AV1 need a transcode. */
  readonly videoCodecName: VideoCodecName;
  readonly audioCodec: NegotiatedCodec | undefined;
  readonly #session: PeerSession;
  readonly #video: TrackTap;
  readonly #audio: TrackTap | undefined;
  readonly #log: Logger | undefined;
  readonly #nack: NackGenerator;
  #lastPacketAt: number | undefined;
  #decrypts: SrtpDecryptCounts | undefined;
  #plisSent = 0;

  private constructor(
    session: PeerSession,
    answerSdp: string,
    video: TrackTap,
    videoCodecs: NegotiatedCodec[],
    codecName: VideoCodecName,
    audio: TrackTap | undefined,
    opts: IngestPeerOptions,
  ) {
    this.#session = session;
    this.answerSdp = answerSdp;
    this.#video = video;
    this.videoCodecs = videoCodecs;
    this.videoCodecName = codecName;
    this.#audio = audio;
    this.audioCodec = audio?.codec;
    this.#log = opts.logger;
    this.#nack = new NackGenerator({ ...opts.nack, send: (lost) => this.#sendNack(lost) });
    this.#tap(video, (seq) => this.#nack.onPacket(seq));
    if (audio) this.#tap(audio);
    // Once DTLS has keyed SRTP (and again after an ICE restart, which may re-key it).
    const ownDecrypt = (state: PeerState) => {
      if (state !== 'connected' || ingestSrtpPreference() !== 'cm') return;
      this.#decrypts = useOwnSrtpDecrypt(this.#video.transceiver.receiver.dtlsTransport) ?? this.#decrypts;
    };
    session.onStateChange(ownDecrypt);
    ownDecrypt(session.state);
  }

  /** The SRTP profile the publisher's DTLS handshake settled on; undefined before it has. */
  get srtpProfile(): 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_128_GCM' | undefined {
    return srtpProfileOf(this.#video.transceiver.receiver.dtlsTransport);
  }

  /**
   * Answers a WHIP offer. Throws OfferRejectedError (status 400/406, see checkOffer) for an offer we
   * cannot take. The answer is complete: it waits for ICE gathering (bounded by gatherTimeoutMs).
   */
  static async create(offerSdp: string, opts: IngestPeerOptions = {}): Promise<IngestPeer> {
    const result = planOffer(offerSdp, 'publish');
    if (!result.ok) throw new OfferRejectedError(result.status, result.reason);
    const { plan } = result;
    const rewritten = rewriteOffer(plan, {
      video: { payloadTypes: plan.video.codecs.map((c) => c.payloadType), rtcpFeedback: VIDEO_FEEDBACK },
      audio: plan.audio && { payloadTypes: [plan.audio.codecs[0].payloadType], rtcpFeedback: [] },
    });
    const videoCodecs: NegotiatedCodec[] = plan.video.codecs.map((c) => ({
      payloadType: c.payloadType,
      mimeType: VIDEO_MIME[plan.video.codec],
      clockRate: c.clockRate,
      fmtp: c.fmtpLine,
    }));
    const audioOffered = plan.audio?.codecs[0];
    const audioCodec: NegotiatedCodec | undefined = audioOffered && {
      payloadType: audioOffered.payloadType,
      mimeType: 'audio/opus',
      clockRate: 48000,
      channels: 2,
      fmtp: audioOffered.fmtpLine,
    };
    let video: TrackTap | undefined;
    let audio: TrackTap | undefined;
    const { session, answerSdp } = await PeerSession.answer(
      {
        offerSdp: rewritten.sdp,
        codecs: answerCodecs(rewritten),
        prepare: (pc) => {
          video = new TrackTap(transceiverAt(pc, plan.video.section.index), videoCodecs[0]);
          disableWeriftNack(video.transceiver);
          if (plan.audio && audioCodec)
            audio = new TrackTap(transceiverAt(pc, plan.audio.section.index), audioCodec);
          for (const tap of [video, audio]) {
            const missing = tap ? leanReceive(tap.transceiver.receiver) : [];
            if (missing.length > 0) warnWeriftReceiver(opts.logger, missing);
          }
          if (ingestSrtpPreference() === 'cm') preferAesCm(pc);
        },
      },
      opts,
    );
    if (!video) throw new Error('unreachable: video transceiver not prepared');
    if (!plan.video.section.lines.some((l) => l.startsWith('a=ssrc:'))) {
      // werift routes incoming RTP by the SSRCs signalled in the offer only.
      opts.logger?.warn('webrtc: WHIP offer signals no a=ssrc for video; werift will drop its packets');
    }
    return new IngestPeer(session, answerSdp, video, videoCodecs, plan.video.codec, audio, opts);
  }

  get state(): PeerState {
    return this.#session.state;
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

  /** Date.now() of the last RTP packet (audio or video); lets a session time out on "no media". */
  get lastPacketAt(): number | undefined {
    return this.#lastPacketAt;
  }

  /**
   * Video RTP as received. Padding-only packets (bandwidth probes) arrive with an empty payload so
   * sequence numbers stay contiguous; skip them when depacketizing. Returns an unsubscribe function.
   */
  onVideoRtp(listener: RtpListener): () => void {
    this.#video.listeners.add(listener);
    return () => this.#video.listeners.delete(listener);
  }

  /** Opus RTP as received; never called when the offer had no acceptable audio. */
  onAudioRtp(listener: RtpListener): () => void {
    const audio = this.#audio;
    if (!audio) return () => {};
    audio.listeners.add(listener);
    return () => audio.listeners.delete(listener);
  }

  /** 'connecting' → 'connected' → 'failed' | 'closed'. 'failed' covers ICE failure, remote gone, timeouts. */
  onStateChange(listener: StateListener): () => void {
    return this.#session.onStateChange(listener);
  }

  /**
   * Sends an RTCP PLI for the video SSRC. No-op before the first video packet (SSRC unknown) or once
   * closed. Sent even if the offer did not list `nack pli`: senders act on PLI regardless. Not throttled.
   */
  requestKeyframe(): void {
    const ssrc = this.#video.ssrc;
    if (ssrc === undefined || this.state === 'closed') return;
    const receiver = this.#video.transceiver.receiver;
    const pli = new RtcpPayloadSpecificFeedback({
      feedback: new PictureLossIndication({ senderSsrc: receiver.rtcpSsrc, mediaSsrc: ssrc }),
    });
    this.#plisSent++;
    receiver.dtlsTransport.sendRtcp([pli]).catch((err: unknown) => {
      this.#log?.debug({ err }, 'webrtc: PLI not sent');
    });
  }

  /**
   * How long a missing video packet can still arrive in answer to our NACKs, ms (from the NACK
   * settings and the measured round trip; 0 if the publisher does not retransmit). A reorder
   * buffer that gives up sooner throws away packets that were on their way.
   */
  get nackWindowMs(): number {
    return this.#nack.recoveryWindowMs();
  }

  stats(): IngestStats {
    return {
      video: {
        ...this.#trackStats(this.#video),
        plisSent: this.#plisSent,
        packetsRequested: this.#nack.packetsRequested,
        packetsRecovered: this.#nack.packetsRecovered,
        nackRttMs: this.#nack.rttMs ?? null,
        nackWindowMs: this.#nack.recoveryWindowMs(),
      },
      audio: this.#audio
        ? this.#trackStats(this.#audio)
        : { packetsReceived: 0, bytesReceived: 0, packetsLost: 0, nacksSent: 0 },
      lastPacketAt: this.#lastPacketAt,
      srtp: {
        profile: this.srtpProfile ?? null,
        decryptedBy: this.#decrypts ? { gateway: this.#decrypts.own, werift: this.#decrypts.werift } : null,
      },
    };
  }

  /** Closes the peer connection and releases its UDP sockets and timers. Idempotent. */
  close(): Promise<void> {
    this.#nack.close();
    return this.#session.close();
  }

  #sendNack(lost: number[]): void {
    const ssrc = this.#video.ssrc;
    if (ssrc === undefined || this.state !== 'connected') return;
    const receiver = this.#video.transceiver.receiver;
    const nack = new RtcpTransportLayerFeedback({
      feedback: new GenericNack({ senderSsrc: receiver.rtcpSsrc, mediaSourceSsrc: ssrc, lost }),
    });
    receiver.dtlsTransport.sendRtcp([nack]).catch((err: unknown) => {
      this.#log?.debug({ err }, 'webrtc: NACK not sent');
    });
  }

  #tap(tap: TrackTap, onSeq?: (seq: number) => void): void {
    const track = tap.transceiver.receiver.track;
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      const { header, payload } = rtp;
      this.#lastPacketAt = Date.now();
      tap.ssrc ??= header.ssrc;
      tap.packets++;
      tap.bytes += payload.length;
      if (header.ssrc === tap.ssrc) onSeq?.(header.sequenceNumber);
      for (const listener of tap.listeners) {
        try {
          listener(payload, header.sequenceNumber, header.timestamp, header.marker);
        } catch (err) {
          this.#log?.error({ err }, 'webrtc: RTP listener threw');
        }
      }
    });
  }

  #trackStats(tap: TrackTap): IngestTrackStats {
    const records = tap.transceiver.receiver.collectStats(Date.now()) as {
      type: string;
      ssrc?: number;
      packetsLost?: number;
    }[];
    const record = records.find(
      (r) => r.type === 'inbound-rtp' && (tap.ssrc === undefined || r.ssrc === tap.ssrc),
    );
    return {
      packetsReceived: tap.packets,
      bytesReceived: tap.bytes,
      packetsLost: Math.max(0, record?.packetsLost ?? 0),
      nacksSent: tap === this.#video ? this.#nack.nacksSent : 0,
      ssrc: tap.ssrc,
    };
  }
}

/**
 * Hands werift's receiver copies of the video codecs without NACK feedback, so its own NACK handler
 * stays off (see nack-generator.ts); the answer still offers NACK, which our generator honours.
 */
function disableWeriftNack(transceiver: RTCRtpTransceiver): void {
  const codecs = transceiver.codecs.map(
    (c) => new RTCRtpCodecParameters({ ...c, rtcpFeedback: c.rtcpFeedback.filter((f) => f.type !== 'nack') }),
  );
  transceiver.receiver.prepareReceive({ codecs, headerExtensions: [], encodings: [] });
}

let warnedReceiver = false;

/** Once per process: werift's receiver moved, so its own (slower) packet handler stays. */
function warnWeriftReceiver(log: Logger | undefined, missing: string[]): void {
  if (warnedReceiver) return;
  warnedReceiver = true;
  log?.warn({ missing }, "webrtc: werift receiver internals changed; received RTP takes werift's own path");
}

/**
 * Which SRTP profile ingest peers ask for, from LPGW_INGEST_SRTP: `cm` (AES_CM_128_HMAC_SHA1_80,
 * the default, decrypted without an object per packet: werift-srtp.ts) or `gcm` (werift's own
 * preference, DTLS role and decryption; for A/B benchmarks and as an escape hatch).
 */
export function ingestSrtpPreference(): 'cm' | 'gcm' {
  return process.env.LPGW_INGEST_SRTP === 'gcm' ? 'gcm' : 'cm';
}
