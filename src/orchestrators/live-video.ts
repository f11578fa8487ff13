// Starting a live-video-to-video job on an orchestrator (POST {transcoder}/live-video-to-video),
// with the headers go-livepeer's gateway sends.
import { OrchestratorError } from './errors.ts';
import { post, readBody } from './http.ts';

export interface LiveJobRequest {
  modelId: string;
  params?: Record<string, unknown>;
  streamId: string;
  requestId: string;
  /** Livepeer-Payment value ('' off-chain). */
  payment: string;
  /** Livepeer-Segment value. */
  segment: string;
  timeoutMs?: number;
}

export interface LiveJobUrls {
  publishUrl: string;
  subscribeUrl: string;
  controlUrl: string;
  eventsUrl: string;
  manifestId: string;
}

/** The AI worker protocol version go-livepeer puts in Authorization. */
export const AI_WORKER_PROTOCOL = 'Livepeer-AI-Worker-1.0';
const MAX_REPLY_BYTES = 64 * 1024;

export async function startLiveVideoToVideo(transcoder: string, job: LiveJobRequest): Promise<LiveJobUrls> {
  const url = new URL('live-video-to-video', transcoder.endsWith('/') ? transcoder : `${transcoder}/`);
  const body = JSON.stringify({
    model_id: job.modelId,
    params: job.params ?? {},
    gateway_request_id: job.requestId,
    stream_id: job.streamId,
    // Required by the schema; the orchestrator fills in its own.
    publish_url: '',
    subscribe_url: '',
  });
  const { status, text } = await postJson(url, body, job);
  if (status !== 200) {
    throw new OrchestratorError(
      'refused',
      transcoder,
      `live-video-to-video: ${status} ${text.trim()}`,
      status,
    );
  }
  let reply: Record<string, unknown>;
  try {
    reply = JSON.parse(text);
  } catch {
    throw new OrchestratorError('invalid-reply', transcoder, 'live-video-to-video reply is not JSON');
  }
  const urls = {
    publishUrl: reply.publish_url,
    subscribeUrl: reply.subscribe_url,
    controlUrl: reply.control_url,
    eventsUrl: reply.events_url,
    manifestId: reply.manifest_id,
  };
  for (const [key, value] of Object.entries(urls)) {
    if (typeof value !== 'string' || value === '') {
      throw new OrchestratorError('invalid-reply', transcoder, `live-video-to-video reply lacks ${key}`);
    }
  }
  for (const key of ['publishUrl', 'subscribeUrl', 'controlUrl', 'eventsUrl'] as const) {
    if (!URL.canParse(urls[key] as string)) {
      throw new OrchestratorError('invalid-reply', transcoder, `live-video-to-video reply has a bad ${key}`);
    }
  }
  return urls as LiveJobUrls;
}

async function postJson(
  url: URL,
  body: string,
  job: LiveJobRequest,
): Promise<{ status: number; text: string }> {
  const timeoutMs = job.timeoutMs ?? 5000;
  const res = await post(url, {
    headers: {
      'Content-Type': 'application/json',
      'Livepeer-Payment': job.payment,
      'Livepeer-Segment': job.segment,
      Authorization: AI_WORKER_PROTOCOL,
      streamID: job.streamId,
      requestID: job.requestId,
    },
    body: Buffer.from(body),
    timeoutMs,
  });
  const reply = await readBody(res, MAX_REPLY_BYTES, timeoutMs, url.origin);
  return { status: res.statusCode ?? 0, text: reply.toString('utf8') };
}
