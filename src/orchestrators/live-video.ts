// Starting a live-video-to-video job on an orchestrator (POST {transcoder}/live-video-to-video),
// with the headers go-livepeer's gateway sends.
import { request } from 'node:https';
import { OrchestratorError } from './errors.ts';

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

function postJson(url: URL, body: string, job: LiveJobRequest): Promise<{ status: number; text: string }> {
  const transcoder = url.origin;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false, // orchestrators use self-signed certificates
        timeout: job.timeoutMs ?? 5000,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Livepeer-Payment': job.payment,
          'Livepeer-Segment': job.segment,
          Authorization: AI_WORKER_PROTOCOL,
          streamID: job.streamId,
          requestID: job.requestId,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) {
            req.destroy(new OrchestratorError('invalid-reply', transcoder, 'reply too large'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new OrchestratorError(
          'timeout',
          transcoder,
          `live-video-to-video timed out after ${job.timeoutMs ?? 5000} ms`,
        ),
      ),
    );
    req.on('error', (err) => {
      if (err instanceof OrchestratorError) reject(err);
      else if (/certificate|SSL|TLS/i.test(err.message))
        reject(new OrchestratorError('tls', transcoder, err.message));
      else reject(new OrchestratorError('unreachable', transcoder, err.message));
    });
    req.end(body);
  });
}
