// An RTMP publish becomes a live stream like a WHIP publish: same name rules, same query
// (`model`/`pipeline`, `params`, `streamId`, `rtmpOutput`), same auth (the WHIP token, or the
// auth webhook with `type: rtmp`), then LiveStreams.publishFeed. Refusals reach the publisher in
// its onStatus, with the reason.
import type { Logger } from 'pino';
import { Secret } from '../config/index.ts';
import { publishQuery, streamName } from '../http/live-routes.ts';
import { type AuthWebhookOptions, askAuthWebhook, goQueryEncode } from '../live/auth-webhook.ts';
import { LiveError } from '../live/errors.ts';
import type { FeedPublisher, FeedSink } from '../live/publisher.ts';
import type { LiveStreams } from '../live/registry.ts';
import { type RtmpPublisher, RtmpRefusal } from './server.ts';

/** The RTMP application publishers use: rtmp://host/live/STREAM. */
export const RTMP_APP = 'live';

export interface RtmpIngestOptions {
  streams: LiveStreams;
  defaultModel: string;
  /** -liveWhipAuthToken: RTMP publishers give it as `?token=` on the stream key. */
  whipAuthToken?: Secret;
  authWebhook?: AuthWebhookOptions;
  /** Base URL of the gateway's HTTP API, for the webhook's whep/status/update URLs. */
  httpBase: string;
  gatewayHost: string;
  logger: Logger;
}

/** The server's onPublish: decides, then starts the stream (its first job is not waited for). */
export function rtmpPublishHandler(opts: RtmpIngestOptions): (p: RtmpPublisher) => Promise<void> {
  return async (publisher) => {
    try {
      await accept(opts, publisher);
    } catch (err) {
      if (err instanceof LiveError) {
        opts.logger.info(
          { stream: publisher.name, status: err.status },
          `RTMP publish refused: ${err.message}`,
        );
        throw new RtmpRefusal(refusalCode(err.status), err.message);
      }
      throw err;
    }
  };
}

function refusalCode(status: number): string {
  if (status === 401 || status === 403) return 'NetStream.Publish.Unauthorized';
  if (status === 409) return 'NetStream.Publish.BadName';
  return 'NetStream.Publish.Failed';
}

async function accept(opts: RtmpIngestOptions, publisher: RtmpPublisher): Promise<void> {
  if (publisher.app !== RTMP_APP) {
    throw new LiveError(404, 'BAD_APP', `publish to rtmp://host/${RTMP_APP}/STREAM (not /${publisher.app})`);
  }
  const stream = streamName(publisher.name);
  const token = publisher.query.get('token') ?? undefined;
  // The token is a credential, not a parameter: it is not passed on.
  const query = new URLSearchParams(publisher.query);
  query.delete('token');
  const job = publishQuery(query.toString(), opts.defaultModel);
  if (opts.whipAuthToken && (token === undefined || !opts.whipAuthToken.equals(token))) {
    throw new LiveError(
      401,
      'UNAUTHORIZED',
      'missing or wrong token: publish to rtmp://host/live/STREAM?token=…',
    );
  }
  let credential = opts.whipAuthToken;
  const streamUrl = `${opts.httpBase.replace(/\/+$/, '')}/live/video-to-video/${encodeURIComponent(stream)}`;
  if (opts.authWebhook) {
    opts.streams.checkRoom(stream);
    const answer = await askAuthWebhook(opts.authWebhook, {
      stream,
      type: 'rtmp',
      queryParams: goQueryEncode(publisher.query.toString()),
      gatewayHost: opts.gatewayHost,
      whepUrl: `${streamUrl}/whep`,
      statusUrl: `${streamUrl}/status`,
      updateUrl: `${streamUrl}/update`,
    });
    if (answer.pipeline) job.modelId = answer.pipeline;
    if (answer.params) job.params = answer.params;
    if (answer.streamId) job.streamId = answer.streamId;
    if (answer.pipelineId) job.pipelineId = answer.pipelineId;
    if (answer.rtmpOutputUrl) job.rtmpOutputUrl = answer.rtmpOutputUrl;
    credential ??= token === undefined ? undefined : new Secret(token);
  }
  // Checked again after the webhook's await; from here to the claim nothing awaits.
  opts.streams.checkRoom(stream);
  const feed = new RtmpFeed(publisher);
  opts.streams
    .publishFeed(stream, feed, { ...job, credential, whepUrl: `${streamUrl}/whep`, receivedAt: Date.now() })
    .catch((err: Error) => publisher.close(`stream did not start: ${err.message}`));
}

/** An RTMP connection as the session's feed publisher. */
class RtmpFeed implements FeedPublisher {
  readonly kind = 'rtmp';
  readonly audioCodec = 'aac';

  constructor(private readonly publisher: RtmpPublisher) {}

  attach(sink: FeedSink): void {
    this.publisher.setSink({
      video: (f) => sink.video(f.annexB, f.pts90k, f.dts90k, f.keyframe),
      audio: (f) => sink.audio(f.adts, f.pts90k),
      end: (reason) => sink.gone(`RTMP publisher gone: ${reason}`),
    });
  }

  close(reason: string): void {
    this.publisher.close(reason);
  }

  stats(): Record<string, unknown> {
    const p = this.publisher;
    const d = p.depacketizer;
    return {
      remote: p.remote,
      bytes: p.bytes,
      videoFrames: p.videoFrames,
      reorderedFrames: p.reorderedFrames,
      audioFrames: p.audioFrames,
      h264Profile: d.profileIdc ?? null,
      aac: d.aac ?? null,
      lastMediaAt: p.lastMediaAt ? new Date(p.lastMediaAt).toISOString() : null,
    };
  }
}
