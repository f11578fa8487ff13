// The orchestrator's output segments → RTP for every WHEP viewer. Frames are packetized once and
// the same payloads go to each viewer; one RtpTimeline per track keeps sequence numbers and
// timestamps continuous across segments (and across orchestrators).
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { type DemuxedFrame, OPUS_CLOCK_RATE, packetizeH264, RtpTimeline, TsDemuxer } from '../media/index.ts';
import type { EgressPeer } from '../webrtc/index.ts';

export interface EgressOptions {
  /** Each video frame sent to the viewers, with its PTS, once it has gone out. */
  onFrame: (bytes: number, pts90k: number, sentAtMs: number) => void;
  logger: Logger;
}

interface Viewer {
  peer: EgressPeer;
  /** A viewer starts at a keyframe: earlier frames would not decode. */
  waitingForKeyframe: boolean;
}

export class Egress {
  private readonly viewers = new Map<string, Viewer>();
  private readonly videoTimeline = new RtpTimeline({ clockRate: 90_000 });
  private readonly audioTimeline = new RtpTimeline({ clockRate: OPUS_CLOCK_RATE, frameDuration90k: 1800 });
  /** When the last output frame went out, for the status page and no-output detection. */
  lastFrameAt?: number;

  constructor(private readonly opts: EgressOptions) {}

  addViewer(id: string, peer: EgressPeer): void {
    this.viewers.set(id, { peer, waitingForKeyframe: true });
  }

  removeViewer(id: string): void {
    this.viewers.delete(id);
  }

  /** Streams one output segment to the viewers as its bytes arrive; rejects if the segment is cut off. */
  async pushSegment(body: Readable): Promise<void> {
    const demuxer = new TsDemuxer();
    for await (const chunk of body) this.send(demuxer.push(chunk as Uint8Array));
    this.send(demuxer.flush());
  }

  private send(frames: DemuxedFrame[]): void {
    const now = Date.now();
    for (const frame of frames) {
      if (frame.kind === 'video') {
        this.lastFrameAt = now;
        // RTP carries the PTS (stepping back for B-frames); continuity is judged on the DTS.
        const timestamp = this.videoTimeline.timestampFor(frame.pts90k, now, frame.dts90k);
        const packets = packetizeH264(frame.annexB);
        const seqs = packets.map(() => this.videoTimeline.nextSequenceNumber());
        for (const viewer of this.viewers.values()) {
          if (viewer.waitingForKeyframe) {
            if (!frame.keyframe) continue;
            viewer.waitingForKeyframe = false;
          }
          for (let i = 0; i < packets.length; i++) {
            viewer.peer.sendVideo(packets[i].payload, seqs[i], timestamp, packets[i].marker);
          }
        }
        this.opts.onFrame(frame.annexB.length, frame.pts90k, Date.now());
      } else if (frame.codec === 'opus') {
        const timestamp = this.audioTimeline.timestampFor(frame.pts90k, now);
        const seq = this.audioTimeline.nextSequenceNumber();
        for (const viewer of this.viewers.values()) {
          if (!viewer.waitingForKeyframe) viewer.peer.sendAudio(frame.data, seq, timestamp, true);
        }
      }
    }
  }
}
