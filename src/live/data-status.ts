// What a live stream's data plane reports: the ingest pipeline with its publisher peer, and the
// output hub with its viewers. One place builds the /status fields and the totals /metrics sums.
import type { IngestPeer, IngestStats } from '../webrtc/index.ts';
import type { Ingest } from './ingest.ts';
import type { OutputHub, OutputHubStats, ViewerSummary } from './output-hub.ts';

export interface InputDataStatus {
  segments: number;
  /** Frames that did not reach the orchestrator: `drops.loss` + `drops.backpressure`. */
  framesDropped: number;
  drops: {
    /** Packet loss the NACKs could not repair (or frames waiting for a keyframe after one). */
    loss: number;
    /** The orchestrator's connection was backed up past the bound; dropped to the next keyframe. */
    backpressure: number;
  };
  /** New jobs (start or failover) that got the cached GOP at once. */
  gopReplays: number;
  /** The input GOP kept for a new job, or null. */
  gop: { frames: number; bytes: number } | null;
  /** Video reorder buffer: its current wait for a gap, and the packets it gave up on / got too late. */
  reorder: { waitMs: number; lost: number; late: number };
  /** The publisher's RTP, from the ingest peer; null before it exists. */
  rtp: {
    packetsReceived: number;
    packetsLost: number;
    nacksSent: number;
    packetsRequested: number;
    packetsRecovered: number;
    rttMs: number | null;
    keyframeRequests: number;
    /** The publisher's SRTP profile, and who decrypted its packets (webrtc/werift-srtp.ts). */
    srtp: IngestStats['srtp'] | null;
  } | null;
}

/** A viewer's summary, with the codec it is sent. */
export type ViewerStatus = ViewerSummary & { codec: 'h264' | 'vp8' };

/** The hub's own counters, with each viewer's summary instead of the count (VP8 viewers' too). */
export type OutputDataStatus = Omit<OutputHubStats, 'viewers' | 'frames'> & { viewers: ViewerStatus[] };

export function inputDataStatus(ingest: Ingest, peer: IngestPeer | undefined): InputDataStatus {
  const s = ingest.stats();
  const ps = peer?.stats();
  const v = ps?.video;
  return {
    segments: s.segments,
    framesDropped: s.framesDroppedLoss + s.framesDroppedBackpressure,
    drops: { loss: s.framesDroppedLoss, backpressure: s.framesDroppedBackpressure },
    gopReplays: s.gopReplays,
    gop: s.gop,
    reorder: s.reorder,
    rtp: v
      ? {
          packetsReceived: v.packetsReceived,
          packetsLost: v.packetsLost,
          nacksSent: v.nacksSent,
          packetsRequested: v.packetsRequested,
          packetsRecovered: v.packetsRecovered,
          rttMs: v.nackRttMs,
          keyframeRequests: v.plisSent,
          srtp: ps?.srtp ?? null,
        }
      : null,
  };
}

/** `vp8Hub`: the VP8 viewers' hub (fed by the H.264 one through an encoder), when there is one. */
export function outputDataStatus(hub: OutputHub, vp8Hub?: OutputHub): OutputDataStatus {
  const s = hub.stats();
  return {
    framesDropped: s.framesDropped,
    keyframeRequests: s.keyframeRequests,
    nacksReceived: s.nacksReceived,
    retransmittedPackets: s.retransmittedPackets,
    packetsLost: s.packetsLost,
    upstreamKeyframeRequests: s.upstreamKeyframeRequests,
    framesSkippedAtSwitch: s.framesSkippedAtSwitch,
    framesCaughtUp: s.framesCaughtUp,
    gop: s.gop,
    starts: s.starts,
    viewers: [
      ...hub.viewerSummaries().map((v) => ({ ...v, codec: 'h264' as const })),
      ...(vp8Hub?.viewerSummaries() ?? []).map((v) => ({ ...v, codec: 'vp8' as const })),
    ],
  };
}

/** Counters summed over streams for /metrics (they only grow: ended streams stay counted). */
export interface DataPlaneTotals {
  inputFramesDroppedLoss: number;
  inputFramesDroppedBackpressure: number;
  inputPacketsLost: number;
  inputNacksSent: number;
  inputPacketsRecovered: number;
  inputKeyframeRequests: number;
  gopReplays: number;
  outputFramesDropped: number;
  outputKeyframeRequests: number;
  outputNacksReceived: number;
  outputRetransmittedPackets: number;
  outputPacketsLost: number;
}

export function emptyTotals(): DataPlaneTotals {
  return {
    inputFramesDroppedLoss: 0,
    inputFramesDroppedBackpressure: 0,
    inputPacketsLost: 0,
    inputNacksSent: 0,
    inputPacketsRecovered: 0,
    inputKeyframeRequests: 0,
    gopReplays: 0,
    outputFramesDropped: 0,
    outputKeyframeRequests: 0,
    outputNacksReceived: 0,
    outputRetransmittedPackets: 0,
    outputPacketsLost: 0,
  };
}

/** Adds one stream's counters (from its status) to `into`. */
export function addTotals(
  into: DataPlaneTotals,
  status: { input: InputDataStatus; output: OutputDataStatus },
): DataPlaneTotals {
  const { input, output } = status;
  into.inputFramesDroppedLoss += input.drops.loss;
  into.inputFramesDroppedBackpressure += input.drops.backpressure;
  into.inputPacketsLost += input.rtp?.packetsLost ?? 0;
  into.inputNacksSent += input.rtp?.nacksSent ?? 0;
  into.inputPacketsRecovered += input.rtp?.packetsRecovered ?? 0;
  into.inputKeyframeRequests += input.rtp?.keyframeRequests ?? 0;
  into.gopReplays += input.gopReplays;
  into.outputFramesDropped += output.framesDropped;
  into.outputKeyframeRequests += output.keyframeRequests;
  into.outputNacksReceived += output.nacksReceived;
  into.outputRetransmittedPackets += output.retransmittedPackets;
  into.outputPacketsLost += output.packetsLost;
  return into;
}
