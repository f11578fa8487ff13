// The orchestrator's output segments → RTP for viewers, with B-frames: timestamps are the PTS, continuity the DTS.
import { Readable } from 'node:stream';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { Egress } from '../../src/live/egress.ts';
import {
  type DemuxedVideo,
  DtsGenerator,
  H264Depacketizer,
  TsDemuxer,
  TsMuxer,
} from '../../src/media/index.ts';
import type { EgressPeer } from '../../src/webrtc/index.ts';
import { frameMd5s, makeSegments } from '../helpers/media.ts';

interface SentPacket {
  payload: Uint8Array;
  seq: number;
  timestamp: number;
  marker: boolean;
}

/** Stands in for a viewer's peer: keeps what it is asked to send. */
function fakeViewer(): { peer: EgressPeer; video: SentPacket[] } {
  const video: SentPacket[] = [];
  const peer = {
    sendVideo: (payload: Uint8Array, seq: number, timestamp: number, marker: boolean) =>
      video.push({ payload: payload.slice(), seq, timestamp, marker }),
    sendAudio: () => {},
  };
  return { peer: peer as unknown as EgressPeer, video };
}

/** A segment as the orchestrator streams it: in chunks that split TS packets. */
function body(segment: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < segment.length; i += 1000) chunks.push(segment.subarray(i, i + 1000));
  return Readable.from(chunks);
}

const WRAP = 2 ** 32;

let segments: Buffer[];
let source: DemuxedVideo[];

beforeAll(async () => {
  // x264 main with 2 B-frames, one segment per 1 s GOP, PTS and DTS continuous across segments.
  segments = await makeSegments({ seconds: 3, bFrames: 2 });
  const demuxer = new TsDemuxer();
  source = [];
  for (const s of segments) {
    for (const f of [...demuxer.push(s), ...demuxer.flush()]) if (f.kind === 'video') source.push(f);
  }
}, 20_000);

describe('egress with B-frames', () => {
  it('sends the PTS as RTP timestamps, one continuous run across segments, seq without gaps', async () => {
    expect(segments).toHaveLength(3);
    expect(source).toHaveLength(90);
    expect(source.some((f, i) => i > 0 && f.pts90k < source[i - 1].pts90k)).toBe(true);
    expect(source.every((f) => f.dts90k <= f.pts90k)).toBe(true);

    const egress = new Egress({ onFrame: () => {}, logger: pino({ level: 'silent' }) });
    const viewer = fakeViewer();
    egress.addViewer('v', viewer.peer);
    for (const s of segments) await egress.pushSegment(body(s));

    const timestamps = frameTimestamps(viewer.video);
    expect(timestamps).toHaveLength(source.length);
    // A constant offset from the source PTS: back and forth with the B-frames, no rebase anywhere.
    const offsets = new Set(timestamps.map((ts, i) => (ts - source[i].pts90k + 4 * WRAP) % WRAP));
    expect(offsets.size).toBe(1);
    expectContinuousSeq(viewer.video);

    // What the viewer gets decodes to the source pictures, in presentation order.
    expect(await decodeRtp(viewer.video)).toEqual(await frameMd5s(Buffer.concat(segments)));
  });

  it('rebases once when a new orchestrator restarts the PTS, after every timestamp already sent', async () => {
    const egress = new Egress({ onFrame: () => {}, logger: pino({ level: 'silent' }) });
    const viewer = fakeViewer();
    egress.addViewer('v', viewer.peer);
    // The same output twice: the second orchestrator's PTS and DTS start over.
    for (const s of [...segments, ...segments]) await egress.pushSegment(body(s));

    const timestamps = unwrap(frameTimestamps(viewer.video));
    expect(timestamps).toHaveLength(2 * source.length);
    const offsets = timestamps.map((ts, i) => ts - source[i % source.length].pts90k);
    const first = offsets.slice(0, source.length);
    const second = offsets.slice(source.length);
    expect(new Set(first).size).toBe(1);
    expect(new Set(second).size).toBe(1);
    expect(second[0]).toBeGreaterThan(first[0]);
    // No picture of the second run presents before (or with) one of the first.
    expect(Math.min(...timestamps.slice(source.length))).toBeGreaterThan(
      Math.max(...timestamps.slice(0, source.length)),
    );
    expectContinuousSeq(viewer.video);
  });
});

/** The RTP timestamp of each frame (packets up to a marker). */
function frameTimestamps(packets: SentPacket[]): number[] {
  const out: number[] = [];
  let inFrame = false;
  for (const p of packets) {
    if (!inFrame) out.push(p.timestamp);
    else expect(p.timestamp).toBe(out[out.length - 1]);
    inFrame = !p.marker;
  }
  expect(inFrame).toBe(false);
  return out;
}

function unwrap(timestamps: number[]): number[] {
  let ticks = 0;
  return timestamps.map((ts, i) => {
    if (i > 0) ticks += (ts - timestamps[i - 1]) | 0;
    return timestamps[0] + ticks;
  });
}

function expectContinuousSeq(packets: SentPacket[]): void {
  for (let i = 1; i < packets.length; i++) expect(packets[i].seq).toBe((packets[i - 1].seq + 1) & 0xffff);
}

/** A viewer's view: RTP → access units → TS (DTS from the PTS, as ingest does) → per-picture MD5s. */
async function decodeRtp(packets: SentPacket[]): Promise<string[]> {
  const muxer = new TsMuxer({ video: true });
  const dts = new DtsGenerator();
  const chunks: Uint8Array[] = [muxer.startSegment()];
  const depacketizer = new H264Depacketizer({
    onAccessUnit: (au) => {
      const pts90k = au.pts90k + 90_000;
      const dts90k = dts.next(pts90k, au.nalus);
      chunks.push(muxer.writeVideo({ annexB: au.annexB, pts90k, dts90k, keyframe: au.keyframe }));
    },
  });
  for (const p of packets) depacketizer.push(p.payload, p.seq, p.timestamp, p.marker);
  depacketizer.flush();
  return frameMd5s(Buffer.concat(chunks));
}
