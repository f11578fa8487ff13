// Opus over RTP (RFC 7587: one Opus packet per RTP payload, 48 kHz clock) and packet durations (RFC 6716 §3.1).
import { RtpTimestampUnwrapper } from './rtp.ts';

export const OPUS_CLOCK_RATE = 48000;

/** Longest legal Opus packet: 120 ms. */
const MAX_PACKET_SAMPLES = 5760;

const SILK_FRAME_SAMPLES = [480, 960, 1920, 2880]; // 10, 20, 40, 60 ms

/** Samples at 48 kHz in one frame of a packet with this TOC byte. */
export function opusFrameSamples(toc: number): number {
  const config = toc >> 3;
  if (config < 12) return SILK_FRAME_SAMPLES[config & 3];
  if (config < 16) return (config & 1) === 0 ? 480 : 960; // Hybrid: 10, 20 ms
  return 120 << (config & 3); // CELT: 2.5, 5, 10, 20 ms
}

/** Duration of an Opus packet in 48 kHz samples, or 0 if the packet is malformed. */
export function opusPacketSamples(packet: Uint8Array): number {
  if (packet.length === 0) return 0;
  const toc = packet[0];
  let frames: number;
  switch (toc & 3) {
    case 0:
      frames = 1;
      break;
    case 1:
    case 2:
      frames = 2;
      break;
    default:
      if (packet.length < 2) return 0;
      frames = packet[1] & 0x3f;
  }
  const samples = frames * opusFrameSamples(toc);
  return samples > MAX_PACKET_SAMPLES ? 0 : samples;
}

export interface OpusFrame {
  /** The Opus packet (the RTP payload itself, not copied). */
  data: Uint8Array;
  rtpTimestamp: number;
  /** 90 kHz ticks since the first RTP packet of the stream. */
  pts90k: number;
}

/** RTP → Opus packets. Trivial, but keeps the 48 kHz → 90 kHz timing in one place. */
export class OpusRtpDepacketizer {
  private readonly unwrapper = new RtpTimestampUnwrapper();
  emptyPackets = 0;

  /** Returns undefined for an empty payload (not a valid Opus packet). */
  push(payload: Uint8Array, timestamp: number): OpusFrame | undefined {
    const ticks = this.unwrapper.unwrap(timestamp);
    if (payload.length === 0) {
      this.emptyPackets++;
      return undefined;
    }
    return {
      data: payload,
      rtpTimestamp: timestamp >>> 0,
      pts90k: Math.round((ticks * 90000) / OPUS_CLOCK_RATE),
    };
  }

  reset(): void {
    this.unwrapper.reset();
  }
}
