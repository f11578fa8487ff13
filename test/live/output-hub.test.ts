// The orchestrator's output segments → RTP for viewers, with B-frames: timestamps are the PTS, continuity the DTS.
import { Readable } from 'node:stream';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { OutputHub, type OutputHubLimits } from '../../src/live/output-hub.ts';
import {
  type DemuxedVideo,
  DtsGenerator,
  H264Depacketizer,
  TsDemuxer,
  TsMuxer,
} from '../../src/media/index.ts';
import { frameMd5s, makeSegments } from '../helpers/media.ts';
import { FakeOutputPeer, type SentRtp as SentPacket } from './fake-output-peer.ts';

/** Stands in for a viewer's peer: connected, keeps what it is asked to send. */
function fakeViewer(): { peer: FakeOutputPeer; video: SentPacket[] } {
  const peer = new FakeOutputPeer();
  peer.connect();
  return { peer, video: peer.video };
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

    const hub = new OutputHub({
      onFrame: () => {},
      requestKeyframe: () => {},
      // Whole segments at once, faster than real time: no pacing here.
      limits: { paceBurstBytes: Number.POSITIVE_INFINITY },
      logger: pino({ level: 'silent' }),
    });
    const viewer = fakeViewer();
    hub.addViewer('v', viewer.peer);
    for (const s of segments) await hub.pushSegment(body(s));

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
    const hub = new OutputHub({
      onFrame: () => {},
      requestKeyframe: () => {},
      // Whole segments at once, faster than real time: no pacing here.
      limits: { paceBurstBytes: Number.POSITIVE_INFINITY },
      logger: pino({ level: 'silent' }),
    });
    const viewer = fakeViewer();
    hub.addViewer('v', viewer.peer);
    // The same output twice: the second orchestrator's PTS and DTS start over.
    for (const s of [...segments, ...segments]) await hub.pushSegment(body(s));

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

// ---------------------------------------------------------------------------------------------
// Viewers: start, GOP cache, slow viewers, orchestrator changes (synthetic H.264 frames)

const SPS = Uint8Array.of(0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8);
const PPS = Uint8Array.of(0x68, 0xce, 0x3c, 0x80);

function annexB(nalus: Uint8Array[]): Uint8Array {
  return Buffer.concat(nalus.flatMap((n) => [Buffer.of(0, 0, 0, 1), n]));
}

/** Frame `index` of a 30 fps stream: an IDR (FU-A sized, with SPS/PPS unless told) or a small P-frame. */
function frame(
  index: number,
  keyframe: boolean,
  opts: { params?: boolean; pts0?: number } = {},
): DemuxedVideo {
  const slice = new Uint8Array(keyframe ? 3000 : 500).fill(0x55);
  // NAL header; first_mb_in_slice = 0 (a whole picture); then the frame's index.
  slice.set([keyframe ? 0x65 : 0x41, 0x88, index >> 8, index & 0xff]);
  const nalus = keyframe && (opts.params ?? true) ? [SPS, PPS, slice] : [slice];
  const pts90k = (opts.pts0 ?? 90_000) + index * 3000;
  return { kind: 'video', codec: 'h264', pid: 256, annexB: annexB(nalus), pts90k, dts90k: pts90k, keyframe };
}

/** Frames from..to-1 of a stream with a keyframe every `gop` frames. */
function frames(from: number, to: number, gop = 30, opts: { pts0?: number } = {}): DemuxedVideo[] {
  const out: DemuxedVideo[] = [];
  for (let i = from; i < to; i++) out.push(frame(i, i % gop === 0, opts));
  return out;
}

interface ViewerFrame {
  index: number;
  keyframe: boolean;
  types: number[];
  timestamp: number;
  seqs: number[];
}

/** What a viewer's decoder gets: access units in arrival order, with the frame index they carry. */
function received(packets: SentPacket[]): ViewerFrame[] {
  const out: ViewerFrame[] = [];
  let seqs: number[] = [];
  const depacketizer = new H264Depacketizer({
    onAccessUnit: (au) => {
      const last = au.nalus[au.nalus.length - 1];
      out.push({
        index: (last[2] << 8) | last[3],
        keyframe: au.keyframe,
        types: au.nalus.map((n) => n[0] & 0x1f),
        timestamp: au.rtpTimestamp,
        seqs,
      });
      seqs = [];
    },
  });
  for (const p of packets) {
    seqs.push(p.seq);
    depacketizer.push(p.payload, p.seq, p.timestamp, p.marker);
  }
  depacketizer.flush();
  return out;
}

function newHub(limits: Partial<OutputHubLimits> = {}) {
  const requests = { upstream: 0 };
  let clock = 1_000_000;
  const hub = new OutputHub({
    onFrame: () => {},
    requestKeyframe: () => requests.upstream++,
    limits,
    logger: pino({ level: 'silent' }),
    now: () => clock,
  });
  return { hub, requests, tick: (ms: number) => (clock += ms) };
}

describe('output hub viewers', () => {
  it('starts a viewer only once a keyframe really went out, from the cached GOP, squeezed onto the live timeline', () => {
    const { hub, requests } = newHub();
    const peer = new FakeOutputPeer();
    hub.addViewer('v1', peer);
    hub.push(frames(0, 10)); // keyframe 0 passes while the viewer's DTLS is not up
    expect(peer.refused).toBe(0); // nothing was even tried on a peer that cannot send
    expect(hub.viewerSummaries()[0].state).toBe('waiting');

    peer.connect(); // DTLS up: the cached GOP (frames 0..9) goes out at once
    const atConnect = received(peer.video);
    expect(atConnect.map((f) => f.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(atConnect[0].keyframe).toBe(true);
    expect(atConnect[0].types).toEqual([7, 8, 5]); // SPS, PPS, IDR first
    expect(hub.viewerSummaries()[0]).toMatchObject({ state: 'live', startedFromCache: true, framesSent: 10 });
    expect(requests.upstream).toBe(0);

    hub.push(frames(10, 20));
    const all = received(peer.video);
    expect(all.map((f) => f.index)).toEqual([...Array(20).keys()]);
    // One continuous run of sequence numbers; the replayed frames fit into 10 ms of RTP time
    // ending at frame 9's own timestamp, after which the live frames are 3000 ticks apart.
    const seqs = all.flatMap((f) => f.seqs);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] + 1) & 0xffff);
    const ts = all.map((f) => f.timestamp);
    expect((ts[9] - ts[0]) >>> 0).toBe(Math.floor((9 * 3000) / 100));
    for (let i = 10; i < 20; i++) expect((ts[i] - ts[i - 1]) >>> 0).toBe(3000);
    expect(hub.stats().starts).toEqual({ fromCache: 1, live: 0 });
  });

  it('asks upstream for a keyframe when a viewer can receive but no GOP is cached, and starts it on the next one', () => {
    const { hub, requests } = newHub();
    hub.push(frames(5, 20)); // joined mid-GOP: no keyframe seen yet
    expect(hub.stats().gop).toBeNull();
    const peer = new FakeOutputPeer();
    hub.addViewer('v1', peer);
    peer.connect();
    expect(requests.upstream).toBe(1);
    hub.push(frames(20, 29));
    expect(peer.video).toHaveLength(0); // never a frame it cannot decode
    hub.push(frames(30, 33));
    const got = received(peer.video);
    expect(got.map((f) => f.index)).toEqual([30, 31, 32]);
    expect(got[0].types).toEqual([7, 8, 5]);
    expect(hub.stats().starts).toEqual({ fromCache: 0, live: 1 });
  });

  it('does not keep a GOP longer than its bounds; a viewer joining then waits for the next keyframe', () => {
    const { hub, requests } = newHub({ maxGopFrames: 20 });
    hub.push(frames(0, 25));
    expect(hub.stats().gop).toBeNull();
    const peer = new FakeOutputPeer();
    hub.addViewer('v1', peer);
    peer.connect();
    expect(requests.upstream).toBe(1);
    expect(peer.video).toHaveLength(0);
    hub.push(frames(25, 31));
    expect(received(peer.video).map((f) => f.index)).toEqual([30]);
    expect(hub.stats().gop).toEqual({ frames: 1, bytes: frame(30, true).annexB.length });
  });

  it('puts the last SPS/PPS in front of a keyframe that comes without them', () => {
    const { hub } = newHub();
    const { peer } = fakeViewer();
    hub.addViewer('v1', peer);
    hub.push([frame(0, true), frame(1, false), frame(2, true, { params: false })]);
    const got = received(peer.video);
    expect(got.map((f) => f.types)).toEqual([[7, 8, 5], [1], [7, 8, 5]]);
  });

  it('drops a slow viewer to the next keyframe, counts it, keeps its sequence numbers continuous, and leaves others alone', () => {
    const { hub } = newHub({ maxViewerQueueBytes: 100_000 });
    const slow = fakeViewer();
    const fast = fakeViewer();
    hub.addViewer('slow', slow.peer);
    hub.addViewer('fast', fast.peer);
    hub.push(frames(0, 10));
    slow.peer.queueBytes = 150_000; // its uplink backed up
    hub.push(frames(10, 20));
    expect(hub.viewerSummaries().find((v) => v.id === 'slow')?.state).toBe('dropping');
    slow.peer.queueBytes = 60_000; // drained, but not below half the bound: still waiting
    hub.push(frames(20, 30));
    slow.peer.queueBytes = 40_000;
    hub.push(frames(30, 31)); // resumes on this keyframe only
    hub.push(frames(31, 35));

    expect(received(fast.video).map((f) => f.index)).toEqual([...Array(35).keys()]);
    const slowFrames = received(slow.video);
    expect(slowFrames.map((f) => f.index)).toEqual([...Array(10).keys(), 30, 31, 32, 33, 34]);
    const seqs = slowFrames.flatMap((f) => f.seqs);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] + 1) & 0xffff);
    const slowSummary = hub.viewerSummaries().find((v) => v.id === 'slow');
    expect(slowSummary).toMatchObject({ state: 'live', framesDropped: 20, framesSent: 15 });
    expect(hub.stats().framesDropped).toBe(20);
  });

  it('after an orchestrator change, skips the new output up to its first keyframe and fast-forwards what viewers already saw', () => {
    const { hub } = newHub();
    const { peer, video } = fakeViewer();
    hub.addViewer('v1', peer);
    hub.push(frames(0, 45), 'job-a'); // viewers saw 0..44
    // The new job got the input GOP from frame 30 on (same PTS), and starts with a stray P-frame.
    hub.push([frame(29, false), ...frames(30, 50)], 'job-b');
    const got = received(video);
    const before = got.slice(0, 45);
    const after = got.slice(45);
    expect(after.map((f) => f.index)).toEqual([...Array(20).keys()].map((i) => 30 + i));
    expect(after[0].keyframe).toBe(true);
    const last = before[44].timestamp;
    // 30..44 again: squeezed just after frame 44's timestamp, within one frame interval.
    for (const f of after.slice(0, 15)) {
      const d = (f.timestamp - last) >>> 0;
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThan(3000);
    }
    // 45 on: the original timeline, as if no change happened.
    for (const [i, f] of after.slice(15).entries()) expect((f.timestamp - last) >>> 0).toBe(3000 * (i + 1));
    const stats = hub.stats();
    expect(stats.framesSkippedAtSwitch).toBe(1);
    expect(stats.framesCaughtUp).toBe(15);
    const seqs = got.flatMap((f) => f.seqs);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] + 1) & 0xffff);
  });

  it('a new orchestrator whose timestamps start over is rebased after what was sent, not fast-forwarded', () => {
    const { hub } = newHub({ paceBurstBytes: Number.POSITIVE_INFINITY });
    const { peer, video } = fakeViewer();
    hub.addViewer('v1', peer);
    hub.push(frames(0, 400), 'job-a'); // over 13 s of output, all at once
    hub.push(frames(0, 10, 30, { pts0: 0 }), 'job-b');
    const got = received(video);
    expect(hub.stats().framesCaughtUp).toBe(0);
    const last = got[399].timestamp;
    expect((got[400].timestamp - last) >>> 0).toBeGreaterThanOrEqual(3000);
    for (let i = 401; i < 410; i++) expect((got[i].timestamp - got[i - 1].timestamp) >>> 0).toBe(3000);
  });

  it('sends audio only to viewers that started, with their own continuous sequence numbers', () => {
    const { hub } = newHub({ maxViewerQueueBytes: 1000 });
    const started = fakeViewer();
    const waiting = new FakeOutputPeer();
    hub.addViewer('a', started.peer);
    hub.addViewer('b', waiting);
    const audio = (pts: number) => ({
      kind: 'audio' as const,
      codec: 'opus' as const,
      pid: 257,
      data: Uint8Array.of(1, 2, 3),
      pts90k: pts,
    });
    hub.push([frame(0, true), audio(90_000), audio(91_800)]);
    expect(started.peer.audio).toHaveLength(2);
    expect(waiting.audio).toHaveLength(0);
    started.peer.queueBytes = 5000;
    hub.push([frame(1, false), audio(93_600)]); // dropping: no audio either
    started.peer.queueBytes = 0;
    hub.push([frame(30, true), audio(95_400)]);
    const seqs = started.peer.audio.map((p) => p.seq);
    expect(seqs).toHaveLength(3);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] + 1) & 0xffff);
  });

  it('owns its viewers: removes failed ones, closes on removeViewer and close, and keeps their counts', async () => {
    const { hub, requests, tick } = newHub();
    const a = fakeViewer();
    const b = fakeViewer();
    const c = fakeViewer();
    hub.addViewer('a', a.peer);
    hub.addViewer('b', b.peer);
    hub.addViewer('c', c.peer);
    expect(() => hub.addViewer('a', new FakeOutputPeer())).toThrow(/already/);
    hub.push(frames(0, 3));
    // A started viewer's PLI goes upstream, at most every 500 ms.
    a.peer.requestKeyframe();
    a.peer.requestKeyframe();
    expect(requests.upstream).toBe(1);
    tick(600);
    a.peer.requestKeyframe();
    expect(requests.upstream).toBe(2);

    b.peer.fail();
    await new Promise((r) => setImmediate(r));
    expect(hub.has('b')).toBe(false);
    expect(b.peer.closed).toBe(true);
    expect(await hub.removeViewer('a')).toBe(true);
    expect(a.peer.closed).toBe(true);
    expect(await hub.removeViewer('a')).toBe(false);
    expect(hub.viewerCount).toBe(1);
    const stats = hub.stats();
    expect(stats.keyframeRequests).toBe(3); // a's, kept after it left
    expect(stats.nacksReceived).toBe(6); // 2 per viewer (fake), gone ones included
    await hub.close();
    expect(c.peer.closed).toBe(true);
    expect(hub.viewerCount).toBe(0);
    hub.push(frames(3, 5));
    expect(() => hub.addViewer('d', new FakeOutputPeer())).toThrow(/closed/);
  });

  it('paces a large cached GOP: the keyframe at once, the rest at the pace, live frames behind it in order', () => {
    // 1 MB/s floor, 64 KB burst; a GOP of 30 frames × ~20 KB = 600 KB.
    const { hub, tick } = newHub({ minPaceBytesPerSecond: 1_000_000, paceBurstBytes: 64 * 1024 });
    const big = (i: number) => {
      const f = frame(i, i % 30 === 0);
      const slice = new Uint8Array(20_000).fill(0x55);
      slice.set([i % 30 === 0 ? 0x65 : 0x41, 0x88, i >> 8, i & 0xff]);
      const nalus = i % 30 === 0 ? [SPS, PPS, slice] : [slice];
      return { ...f, annexB: annexB(nalus) };
    };
    hub.push([...Array(30).keys()].map(big));
    const peer = new FakeOutputPeer();
    hub.addViewer('v1', peer);
    peer.connect();
    const atOnce = received(peer.video);
    expect(atOnce[0].keyframe).toBe(true); // started at once
    expect(hub.viewerSummaries()[0]).toMatchObject({ state: 'live', startedFromCache: true });
    expect(atOnce.length).toBeLessThanOrEqual(5); // ~64 KB, not 600 KB in one burst
    const queued = hub.viewerSummaries()[0].queueBytes;
    expect(queued).toBeGreaterThan(400_000);
    hub.push([{ ...big(31), keyframe: false }]); // a live frame arrives meanwhile
    tick(100);
    hub.drainQueues(); // 100 ms at ≥ 1 MB/s: about 100 KB more
    const after100 = received(peer.video).length;
    expect(after100).toBeGreaterThan(atOnce.length + 3);
    expect(after100).toBeLessThan(atOnce.length + 8);
    for (let t = 0; t < 1000; t += 5) {
      tick(5);
      hub.drainQueues();
    }
    const all = received(peer.video);
    expect(all.map((f) => f.index)).toEqual([...[...Array(30).keys()], 31]);
    expect(hub.viewerSummaries()[0].queueBytes).toBe(0);
  });

  it('drops a viewer whose paced queue grows past its bound to the next keyframe, queue included', () => {
    const { hub, tick } = newHub({ maxViewerQueueBytes: 100_000, paceBurstBytes: 10_000 });
    const { peer } = fakeViewer();
    hub.addViewer('v1', peer);
    const big = (i: number, key: boolean) => {
      const slice = new Uint8Array(30_000).fill(0x55);
      slice.set([key ? 0x65 : 0x41, 0x88, i >> 8, i & 0xff]);
      return { ...frame(i, key), annexB: annexB(key ? [SPS, PPS, slice] : [slice]) };
    };
    // No time passes: frames pile up in its queue beyond 100 KB.
    hub.push([big(0, true), big(1, false), big(2, false), big(3, false), big(4, false), big(5, false)]);
    expect(hub.viewerSummaries()[0].state).toBe('dropping');
    hub.push([big(6, false), big(30, true)]);
    tick(50);
    hub.drainQueues();
    const got = received(peer.video);
    // Frame 0 went at once; the queued ones were dropped with the rest, up to keyframe 30.
    expect(got.map((f) => f.index)).toEqual([0, 30]);
    const seqs = got.flatMap((f) => f.seqs);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] + 1) & 0xffff);
    expect(hub.viewerSummaries()[0].framesDropped).toBe(6);
  });

  it('summarises each viewer with its peer stats', () => {
    const { hub, tick } = newHub();
    const peer = new FakeOutputPeer();
    hub.addViewer('v1', peer);
    hub.push(frames(0, 3));
    tick(40);
    peer.connect();
    expect(hub.viewerSummaries()).toEqual([
      {
        id: 'v1',
        state: 'live',
        startMs: 40,
        startedFromCache: true,
        framesSent: 3,
        framesDropped: 0,
        queueBytes: 0,
        keyframeRequests: 0,
        nacksReceived: 2,
        retransmittedPackets: 1,
        packetsLost: 3,
        fractionLost: 0.01,
        rttMs: 42,
      },
    ]);
  });
});
