// The events channel of a live job, read as go-livepeer's gateway reads it
// (server/ai_live_video.go startEventsSubscribe): each trickle segment is one JSON message, either
// ai-runner's envelope {"event": {...}, "queue_event_type": "..."} or a bare event {"type": ...}.
import type { Readable } from 'node:stream';

/** A message larger than this is dropped unread (ai-runner's status with restart logs is a few KiB). */
export const MAX_EVENT_BYTES = 256 * 1024;

export type OrchestratorEvent =
  /** The pipeline's status: ai-runner's PipelineStatus (state LOADING, ONLINE, ERROR, ...). */
  | { type: 'status'; state?: string; restarts?: number; event: Record<string, unknown> }
  /** ai-runner restarted the pipeline process (it reports LOADING until it is back). */
  | { type: 'restart'; restarts?: number; event: Record<string, unknown> }
  | { type: 'error'; message: string; event: Record<string, unknown> }
  /** Anything else (stream traces, params updates): kept for logs only. */
  | { type: 'other'; eventType: string; event: Record<string, unknown> };

/** The part of a trickle subscriber the reader needs. */
export interface EventSegments {
  next(): Promise<{ seq: number; body: Readable } | null>;
}

/**
 * Reads the channel until it ends: one message at a time, each at most MAX_EVENT_BYTES (a larger
 * one is dropped unread). An orchestrator sending more or bigger events than this reads cannot
 * grow our memory: what is not read yet stays on its trickle server. Rejects when next() does.
 */
export async function readEvents(
  channel: EventSegments,
  on: {
    event: (event: OrchestratorEvent) => void;
    dropped: (why: 'too-large' | 'not-an-object', seq: number) => void;
    /** Stop reading (the job was closed). */
    closed: () => boolean;
  },
): Promise<void> {
  for (;;) {
    const segment = await channel.next();
    if (on.closed() || !segment) return;
    const text = await readCapped(segment.body, MAX_EVENT_BYTES);
    if (on.closed()) return;
    const event = text === undefined ? undefined : parseOrchestratorEvent(text);
    if (event) on.event(event);
    else on.dropped(text === undefined ? 'too-large' : 'not-an-object', segment.seq);
  }
}

/** The body as text, or undefined (and the body destroyed) once it passes `max` bytes. */
async function readCapped(body: Readable, max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One events-channel message; undefined when it is not a JSON object. */
export function parseOrchestratorEvent(text: string): OrchestratorEvent | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(body)) return undefined;
  // As go-livepeer: the envelope's "event" when it has one, else the whole message.
  const event = isObject(body.event) ? body.event : body;
  const type = typeof event.type === 'string' ? event.type : 'unknown';
  switch (type) {
    case 'status': {
      const inference = isObject(event.inference_status) ? event.inference_status : undefined;
      return {
        type: 'status',
        state: typeof event.state === 'string' ? event.state : undefined,
        restarts: count(inference?.restart_count),
        event,
      };
    }
    case 'restart':
      return { type: 'restart', restarts: count(event.restart_count), event };
    case 'error': {
      const message = event.message ?? event.error ?? '';
      return {
        type: 'error',
        message: String(typeof message === 'string' ? message : JSON.stringify(message)),
        event,
      };
    }
    default:
      return { type: 'other', eventType: type, event };
  }
}

/**
 * The status to show: the new one, with the large fields ai-runner sends once and then nulls
 * (inference_status.last_restart_logs, last_params) carried over from the previous one, as
 * go-livepeer's StreamStatusStore does.
 */
export function coalesceStatus(
  prev: Record<string, unknown> | null,
  next: Record<string, unknown>,
): Record<string, unknown> {
  const inference = isObject(next.inference_status) ? next.inference_status : undefined;
  const before = prev && isObject(prev.inference_status) ? prev.inference_status : undefined;
  if (!inference || !before) return next;
  const merged = { ...inference };
  for (const key of ['last_restart_logs', 'last_params']) {
    if (merged[key] === undefined || merged[key] === null) merged[key] = before[key];
  }
  return { ...next, inference_status: merged };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}
