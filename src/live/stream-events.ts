// What happens to each live stream, for operators: go-livepeer's stream trace and stream events
// (server/ai_mediaserver.go, ai_live_video.go), in its Kafka envelope, from one emitter that the
// registry owns. The events webhook and the SSE route subscribe to it, so both see the same stream.
import { randomUUID } from 'node:crypto';

/** go-livepeer's Kafka queue types that a live stream produces (docs/operator-interfaces.md §3). */
export type QueueType = 'stream_trace' | 'ai_stream_events' | 'ai_stream_status';

/** go-livepeer's envelope: `timestamp` is unix ms as a string, as its Kafka producer writes it. */
export interface StreamEvent {
  id: string;
  type: QueueType;
  timestamp: string;
  gateway: string;
  data: { type: string; [key: string]: unknown };
}

/** `listener(event, json)`: `json` is the event serialised once for every subscriber. Must not block. */
export type StreamEventListener = (event: StreamEvent, json: string) => void;

/** go-livepeer's `orchestrator_info`: `{"address": "", "url": ""}` before an orchestrator is chosen. */
export interface OrchestratorInfoField {
  address: string;
  url: string;
}

export const NO_ORCHESTRATOR: OrchestratorInfoField = { address: '', url: '' };

export class StreamEvents {
  private readonly listeners = new Set<StreamEventListener>();
  private emitted = 0;

  constructor(private readonly opts: { gateway?: string; now?: () => number } = {}) {}

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: StreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(type: QueueType, data: StreamEvent['data']): void {
    this.emitted++;
    if (this.listeners.size === 0) return;
    const now = (this.opts.now ?? Date.now)();
    const event: StreamEvent = {
      id: randomUUID(),
      type,
      timestamp: String(now),
      gateway: this.opts.gateway ?? '',
      data,
    };
    const json = JSON.stringify(event);
    for (const listener of this.listeners) {
      try {
        listener(event, json);
      } catch {
        // A sink's own trouble is its own (it counts it); the stream and the other sinks go on.
      }
    }
  }

  stats(): { emitted: number; listeners: number } {
    return { emitted: this.emitted, listeners: this.listeners.size };
  }
}

/** The ids go-livepeer puts in every event of one stream. */
export interface StreamIds {
  /** Our stream name (the path's `{stream}`): not in go-livepeer's events, added so SSE can filter. */
  stream: string;
  /** The auth webhook's `stream_id`, else the `streamId` query parameter, else "". */
  streamId: string;
  pipelineId: string;
  /** go-livepeer's 8-hex request id; ours is the first 8 hex of the WHIP session id. */
  requestId: string;
  /** The model id (go-livepeer's `pipeline`). */
  pipeline: string;
}

/** One stream's view of the emitter: fills in its ids and the orchestrator. */
export class StreamTracer {
  constructor(
    private readonly events: StreamEvents,
    readonly ids: StreamIds,
    private readonly now: () => number = Date.now,
  ) {}

  /** A `stream_trace` event: `timestamp` (ms, a number), ids and `orchestrator_info`. */
  trace(
    type: string,
    orchestrator: OrchestratorInfoField = NO_ORCHESTRATOR,
    extra: Record<string, unknown> = {},
  ): void {
    const { stream, streamId, pipelineId, requestId } = this.ids;
    this.events.emit('stream_trace', {
      type,
      timestamp: this.now(),
      stream_id: streamId,
      pipeline_id: pipelineId,
      request_id: requestId,
      orchestrator_info: orchestrator,
      stream,
      ...extra,
    });
  }

  /** An `ai_stream_events` event (`params_update`, `error`) with go-livepeer's fields. */
  streamEvent(type: string, fields: Record<string, unknown>, orchestrator?: OrchestratorInfoField): void {
    const { stream, streamId, pipelineId, requestId, pipeline } = this.ids;
    this.events.emit('ai_stream_events', {
      type,
      timestamp: this.now(),
      stream_id: streamId,
      request_id: requestId,
      pipeline_id: pipelineId,
      pipeline,
      ...(orchestrator ? { orchestrator_info: orchestrator } : {}),
      stream,
      ...fields,
    });
  }

  /**
   * An event from the orchestrator's events channel, forwarded as go-livepeer forwards it: its
   * own fields, with the stream's ids and the orchestrator set; `status` is filed as
   * `ai_stream_status`, the runner's traces (`runner_*`) as `stream_trace`.
   */
  forward(event: Record<string, unknown>, orchestrator: OrchestratorInfoField): void {
    const type = typeof event.type === 'string' ? event.type : 'unknown';
    const queue: QueueType =
      type === 'status'
        ? 'ai_stream_status'
        : type.startsWith('runner_')
          ? 'stream_trace'
          : 'ai_stream_events';
    const { stream, streamId, pipelineId, requestId } = this.ids;
    this.events.emit(queue, {
      ...event,
      type,
      stream_id: streamId,
      request_id: requestId,
      pipeline_id: pipelineId,
      orchestrator_info: orchestrator,
      stream,
    });
  }
}

/** go-livepeer's orchestrator_info for an orchestrator: address as lowercase 0x-hex ("0x" if none). */
export function orchestratorInfo(url: string, address?: Uint8Array): OrchestratorInfoField {
  return { address: `0x${address ? Buffer.from(address).toString('hex') : ''}`, url };
}
