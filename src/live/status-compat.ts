// The keys of go-livepeer's GET /live/video-to-video/{streamId}/status (docs/operator-interfaces.md
// §4): the runner's PipelineStatus with `gateway_status` added. They sit beside our own status
// keys, filled from the orchestrator's last status event where it sent one and from what the
// gateway measured where it did not, so clients written for go-livepeer's gateway read them.
import { createHash } from 'node:crypto';
import type { IngestStats } from '../webrtc/index.ts';
import type { OrchestratorInfoField, StreamIds } from './stream-events.ts';

/** go-livepeer's thresholds for `conn_quality` (media/whip_connection.go). */
const ACCEPTABLE_LOSS_PCT = 2;

export interface GoLivepeerStatus {
  stream_id: string;
  request_id: string;
  pipeline_id: string;
  pipeline: string;
  start_time: number;
  orchestrator_info: OrchestratorInfoField | null;
  input_status: Record<string, unknown>;
  inference_status: InferenceStatus;
  gateway_status: GatewayStatus;
}

/** ai-runner's InferenceStatus (runner/live/process/status.py); times are unix ms or null. */
export interface InferenceStatus {
  last_output_time: number | null;
  fps: number;
  last_params_update_time: number | null;
  last_params: Record<string, unknown> | null;
  last_params_hash: string | null;
  last_error_time: number | null;
  last_error: string | null;
  last_restart_time: number | null;
  last_restart_logs: string[] | null;
  restart_count: number;
  [key: string]: unknown;
}

export interface GatewayStatus {
  whep_url: string;
  ingest_metrics: { stats: IngestMetrics } | null;
  /** The stream's first gateway-side error, as go-livepeer keeps it. */
  error?: { error_message: string; error_time: number };
}

/** go-livepeer's media.MediaStats: capitalised peer keys (its Go struct has no JSON tags). */
export interface IngestMetrics {
  peer_conn_stats: { ID: string; BytesReceived: number; BytesSent: number | null };
  track_stats?: TrackStats[];
  conn_quality: 'good' | 'bad';
}

export interface TrackStats {
  type: 'video' | 'audio';
  /** Not measured by our ingest peer: null. */
  jitter: number | null;
  packets_lost: number;
  packets_received: number;
  packet_loss_pct: number;
  /** Nanoseconds, as a Go time.Duration; our NACK round trip (video), 0 when none measured. */
  rtt: number;
  /** Seconds; ingest → egress per frame (median), video only. */
  latency: number;
  warnings?: string[];
}

export interface CompatInputs {
  ids: StreamIds;
  sessionId: string;
  whepUrl: string;
  startedAt: number;
  orchestrator: OrchestratorInfoField | null;
  /** The orchestrator's last status event, coalesced (null before the first). */
  runner: Record<string, unknown> | null;
  params: Record<string, unknown>;
  paramsAt: number;
  outputFps: number;
  inputFps: number;
  lastInputAt: number | null;
  lastOutputAt: number | null;
  lastRunnerError: { at: number; message: string } | null;
  ingest: IngestStats | undefined;
  latencyMs: number | null;
  firstError: { message: string; at: number } | null;
}

export function goLivepeerStatus(c: CompatInputs): GoLivepeerStatus {
  const runner = c.runner ?? {};
  const runnerInference = isObject(runner.inference_status) ? runner.inference_status : {};
  const runnerInput = isObject(runner.input_status) ? runner.input_status : undefined;
  const inference: InferenceStatus = {
    last_output_time: c.lastOutputAt,
    fps: c.outputFps,
    last_params_update_time: c.paramsAt,
    last_params: c.params,
    last_params_hash: paramsHash(c.params),
    last_error_time: c.lastRunnerError?.at ?? null,
    last_error: c.lastRunnerError?.message ?? null,
    last_restart_time: null,
    last_restart_logs: null,
    restart_count: 0,
    // What the runner said wins where it said it.
    ...definedOnly(runnerInference),
  };
  const gateway: GatewayStatus = {
    whep_url: c.whepUrl,
    ingest_metrics: c.ingest ? { stats: ingestMetrics(c.sessionId, c.ingest, c.latencyMs) } : null,
  };
  if (c.firstError) gateway.error = { error_message: c.firstError.message, error_time: c.firstError.at };
  return {
    stream_id: c.ids.streamId,
    request_id: c.ids.requestId,
    pipeline_id: c.ids.pipelineId,
    pipeline: c.ids.pipeline,
    start_time: typeof runner.start_time === 'number' ? runner.start_time : c.startedAt,
    orchestrator_info: c.orchestrator,
    input_status: runnerInput ?? { last_input_time: c.lastInputAt, fps: c.inputFps },
    inference_status: inference,
    gateway_status: gateway,
  };
}

function ingestMetrics(sessionId: string, s: IngestStats, latencyMs: number | null): IngestMetrics {
  let quality: IngestMetrics['conn_quality'] = 'good';
  const tracks: TrackStats[] = [];
  for (const type of ['video', 'audio'] as const) {
    const t = s[type];
    if (t.packetsReceived === 0 && t.packetsLost === 0) continue;
    const lossPct = (t.packetsLost / (t.packetsLost + t.packetsReceived)) * 100;
    const warnings: string[] = [];
    if (lossPct > ACCEPTABLE_LOSS_PCT) {
      quality = 'bad';
      warnings.push(`packet loss greater than ${ACCEPTABLE_LOSS_PCT}%`);
    }
    const rttMs = type === 'video' ? s.video.nackRttMs : null;
    tracks.push({
      type,
      jitter: null,
      packets_lost: t.packetsLost,
      packets_received: t.packetsReceived,
      packet_loss_pct: lossPct,
      rtt: Math.round((rttMs ?? 0) * 1e6),
      latency: type === 'video' && latencyMs !== null ? latencyMs / 1000 : 0,
      ...(warnings.length ? { warnings } : {}),
    });
  }
  return {
    peer_conn_stats: {
      ID: sessionId,
      BytesReceived: s.video.bytesReceived + s.audio.bytesReceived,
      BytesSent: null,
    },
    ...(tracks.length ? { track_stats: tracks } : {}),
    conn_quality: quality,
  };
}

/** ai-runner's last_params_hash: md5 of Python's `json.dumps(params, sort_keys=True)`. */
export function paramsHash(params: Record<string, unknown>): string {
  return createHash('md5').update(pythonJson(params)).digest('hex');
}

/**
 * Python's json.dumps(v, sort_keys=True) for JSON values: ", " and ": " separators, keys sorted
 * by code point, non-ASCII escaped as \uXXXX. (A float that JSON.parse turned into an integer,
 * such as 1.0, prints as 1 here and 1.0 in Python.)
 */
export function pythonJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : v < 0 ? '-Infinity' : 'NaN';
    // Python writes exponents with at least two digits (1e-07).
    return String(v).replace(/e([+-])(\d)$/, 'e$10$2');
  }
  if (typeof v === 'string') return pythonString(v);
  if (Array.isArray(v)) return `[${v.map(pythonJson).join(', ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${pythonString(k)}: ${pythonJson((v as Record<string, unknown>)[k])}`).join(', ')}}`;
  }
  return 'null';
}

const ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

function pythonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const code = s.charCodeAt(i);
    if (ESCAPES[ch]) out += ESCAPES[ch];
    else if (code < 0x20 || code > 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
