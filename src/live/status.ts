// What GET /live/video-to-video/{stream}/status answers for a live stream.
import type { Blame, Failure } from './cause.ts';
import type { InputDataStatus, OutputDataStatus } from './data-status.ts';
import type { PaymentStatus } from './live-payer.ts';
import type { SwapRecord as PolicySwapRecord, StreamState } from './policy.ts';
import type { GoLivepeerStatus } from './status-compat.ts';

/**
 * `starting`: the publisher is not connected yet. `loading`: a job runs but no output yet
 * (warm-up, or a pipeline reloading). `degraded`: the publisher is connected but the stream is
 * not processed right now; `stateReason` says why.
 */
export type LiveState = StreamState;

export interface SwapRecord {
  at: string;
  from: string;
  to: string | null;
  reason: string;
  blame: Blame;
  code: Failure['code'];
  /** Time from the failure being noticed to the new job running. */
  tookMs: number | null;
}

/** Our keys, and beside them go-livepeer's (status-compat.ts) for clients written for its gateway. */
export interface LiveStatus extends GoLivepeerStatus {
  stream: string;
  state: LiveState;
  /** Why the stream is in its state (degraded, loading, ended); null when live. */
  stateReason: string | null;
  model: string;
  params: Record<string, unknown>;
  orchestrator: string | null;
  manifestId: string | null;
  startedAt: string;
  input: { fps: number; bitrateKbps: number } & InputDataStatus;
  output: { fps: number; bitrateKbps: number; segments: number } & OutputDataStatus;
  viewers: number;
  /**
   * The publisher's video codec (VP8/VP9/AV1 are transcoded to H.264 once) and the VP8 viewers served
   * by the stream's one VP8 encoder, with its frame counts (docs/codecs.md). null before the peer.
   */
  codecs: {
    publisher: 'h264' | 'vp8' | 'vp9' | 'av1' | null;
    vp8Viewers: number;
    vp8Encoder: { framesIn: number; framesOut: number; starts: number } | null;
  };
  /** Ingest arrival → egress send per frame, over recent frames (includes the orchestrator's time). */
  latencyMs: { p50: number; p95: number; frames: number } | null;
  /** WHIP offer → first processed frame sent to viewers. */
  firstFrameDelayMs: number | null;
  /** The last failure, as one line (`url: what`). */
  lastError: string | null;
  /** The same, typed: who is to blame and what happened. */
  lastFailure: (Failure & { at: string }) | null;
  /** The orchestrator's last status event as it sent it (ai-runner's PipelineStatus, coalesced). */
  orchestratorStatus: Record<string, unknown> | null;
  /** Its last error events (newest last). */
  orchestratorErrors: { at: string; message: string }[];
  swaps: SwapRecord[];
  /** Swaps allowed per window (go-livepeer: 2 per 3 min): used, left, and whether it is spent. */
  swapBudget: { used: number; left: number; max: number; windowMs: number; exhausted: boolean };
  /** What was paid to whom: one entry per paid orchestrator this stream used. */
  payments: PaymentStatus[];
  endReason?: string;
  /** A publisher that is not WebRTC (RTMP): its kind and state. Absent for WHIP. */
  publisher?: Record<string, unknown>;
  /** Where the output is pushed over RTMP, and how that goes. Absent when nowhere. */
  rtmpOutputs?: {
    url: string;
    state: 'connecting' | 'live' | 'retrying' | 'stopped';
    since: string;
    restarts: number;
    lastError: string | null;
    bytesIn: number;
    bytesDropped: number;
  }[];
}

export function statusRecord(r: PolicySwapRecord): SwapRecord {
  return {
    at: new Date(r.at).toISOString(),
    from: r.from,
    to: r.to,
    reason: r.reason,
    blame: r.blame,
    code: r.code,
    tookMs: r.tookMs,
  };
}
