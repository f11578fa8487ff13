// WHIP ingest, WHEP playback, param updates and status for live video-to-video, on
// go-livepeer's paths (/live/video-to-video/{stream}/...) so existing clients work.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { type IceServer, Secret } from '../config/index.ts';
import { type AuthWebhookOptions, askAuthWebhook, goQueryEncode } from '../live/auth-webhook.ts';
import { LiveError } from '../live/errors.ts';
import { jsonDepth } from '../live/operator-http.ts';
import type { LiveStreams, PublishOptions } from '../live/registry.ts';
import { decodeSdp, SDP_LIMITS, SDPFRAG_CONTENT_TYPE, SDPFRAG_LIMITS } from '../webrtc/index.ts';
import { bearerOf, carries, requireBearer } from './auth.ts';
import { parseClientJson } from './input-guard.ts';

export interface LiveRoutesOptions {
  streams: LiveStreams;
  iceServers: readonly IceServer[];
  /** The Bearer token every publisher must send; it then guards the stream's other routes too. */
  whipAuthToken?: Secret;
  /** go-livepeer's live auth webhook, asked before each WHIP stream starts. */
  authWebhook?: AuthWebhookOptions;
  /** The Bearer token WHEP viewers must send (POST, PATCH and DELETE of their sessions). */
  whepAuthToken?: Secret;
  /** The operator's token: reads any stream's status and lists protected streams. */
  operatorToken?: Secret;
  /** go-livepeer's -gatewayHost: `gateway_host` for the auth webhook, and the host of the URLs it gets. */
  gatewayHost?: string;
  defaultModel: string;
  /** Base of absolute URLs we hand out (https://gw.example.com); default: the request's scheme and Host. */
  publicUrl?: string;
  /**
   * Scale-out (-redisUrl): this node's own base URL. Its streams' playback URLs name it, and
   * requests for streams other nodes run are sent on to them (docs/scale-out.md).
   */
  clusterNodeUrl?: string;
}

/** Marks a request one node sent on to another: never sent on again (no loops). */
const HOP_HEADER = 'lp-cluster-hop';
/** A node that does not answer a forwarded request within this long is reported as unreachable. */
const FORWARD_TIMEOUT_MS = 15_000;

const BASE_PATH = '/live/video-to-video';
const BASE = `${BASE_PATH}/:stream`;
const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
/** `params` in the query (go-livepeer's WHIP takes them there): nesting bound. */
const MAX_QUERY_PARAMS_DEPTH = 32;
const MAX_ID_LENGTH = 256;

type StreamParams = { stream: string };
type ResourceParams = { stream: string; id: string };

export const liveRoutes: FastifyPluginAsync<LiveRoutesOptions> = async (app, opts) => {
  // Offers (POST .../whip, .../whep) are bounded like the SDP parser: a larger body gets a 413
  // naming this limit (the route's limit is what fastify reports).
  app.addHook('onRoute', (route) => {
    if (route.method !== 'POST' || !/\/wh[ie]p$/.test(route.url)) return;
    route.bodyLimit = SDP_LIMITS.maxBytes;
    route.config = { ...route.config, refuseBeforeContinue: true };
  });
  // Offers are parsed as bytes so that non-UTF-8 gets a 400 naming the line, not U+FFFD.
  app.addContentTypeParser(
    'application/sdp',
    { parseAs: 'buffer', bodyLimit: SDP_LIMITS.maxBytes },
    (_req, body, done) => {
      try {
        done(null, decodeSdp(body as Buffer));
      } catch (err) {
        done(new LiveError(400, 'BAD_SDP', (err as Error).message), undefined);
      }
    },
  );

  // Browsers publish from other origins (and our own pages): allow them, and expose WHIP's headers.
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/live/')) return;
    reply.header('Access-Control-Allow-Origin', '*');
    reply.header(
      'Access-Control-Expose-Headers',
      'Location, Link, ETag, Accept-Patch, Livepeer-Playback-URL',
    );
  });
  app.options(`${BASE}/*`, async (_req, reply) => {
    reply
      .code(204)
      .header('Access-Control-Allow-Methods', 'POST, DELETE, PATCH, OPTIONS')
      .header('Access-Control-Allow-Headers', 'Content-Type, Authorization, If-Match')
      .header('Accept-Post', 'application/sdp')
      // RFC 9725 §4.3: trickle ICE and ICE restarts by PATCH on the session URLs.
      .header('Accept-Patch', SDPFRAG_CONTENT_TYPE);
    const links = iceLinks(opts.iceServers);
    if (links.length) reply.header('Link', links);
    return reply.send();
  });

  app.post<{ Params: StreamParams; Body: unknown }>(`${BASE}/whip`, async (req, reply) => {
    const receivedAt = Date.now();
    requireBearer(req, opts.whipAuthToken);
    const stream = streamName(req.params.stream);
    const offer = sdpBody(req);
    const job = publishQuery(req.url.split('?')[1] ?? '', opts.defaultModel);
    const streamUrl = `${BASE_PATH}/${encodeURIComponent(stream)}`;
    // Scale-out: the playback URL names this node, the stream's owner.
    const whepUrl = `${opts.clusterNodeUrl ?? publicBase(req, opts.publicUrl)}${streamUrl}/whep`;
    let credential = opts.whipAuthToken;
    if (opts.authWebhook) {
      opts.streams.checkRoom(stream);
      // Asked before anything is created, so a refusal costs nothing.
      const base = opts.publicUrl ?? (opts.gatewayHost ? `https://${opts.gatewayHost}` : publicBase(req));
      const answer = await askAuthWebhook(opts.authWebhook, {
        stream,
        type: 'livepeer-whip',
        queryParams: goQueryEncode(req.url.split('?')[1] ?? ''),
        gatewayHost: opts.gatewayHost ?? req.host,
        whepUrl,
        statusUrl: `${base.replace(/\/+$/, '')}${streamUrl}/status`,
        updateUrl: `${base.replace(/\/+$/, '')}${streamUrl}/update`,
      }).catch((err: unknown) => {
        if (err instanceof LiveError) req.log.info({ stream, status: err.status }, err.message);
        throw err;
      });
      if (answer.pipeline) job.modelId = answer.pipeline;
      if (answer.params) job.params = answer.params;
      if (answer.streamId) job.streamId = answer.streamId;
      if (answer.pipelineId) job.pipelineId = answer.pipelineId;
      if (answer.rtmpOutputUrl) job.rtmpOutputUrl = answer.rtmpOutputUrl;
      // With the webhook, the stream's credential is the Bearer token its publisher sent.
      const token = bearerOf(req);
      credential ??= token === undefined ? undefined : new Secret(token);
    }
    const { sessionId, answerSdp, etag } = await opts.streams.publish(stream, offer, {
      ...job,
      credential,
      whepUrl,
      receivedAt,
    });
    const location = `${streamUrl}/whip/${sessionId}`;
    // go-livepeer's header (media/whip_server.go); Daydream's browser SDK plays this URL.
    reply.header('Livepeer-Playback-URL', whepUrl);
    return created(reply, location, etag, answerSdp, opts.iceServers).send(answerSdp);
  });

  /**
   * The stream's own routes (/update, /status, WHIP DELETE and PATCH) need what its publish
   * needed: -liveWhipAuthToken, or with the auth webhook the Bearer token the publisher sent.
   * The operator's token reads any status.
   */
  const requireStreamCredential = (
    req: FastifyRequest,
    key: string,
    opts_: { status?: boolean } = {},
  ): void => {
    if (opts_.status && carries(req, opts.operatorToken)) return;
    const needed = opts.whipAuthToken ?? opts.streams.credentialOf(key, { byId: opts_.status });
    if (!needed || carries(req, needed)) return;
    throw new LiveError(
      401,
      'UNAUTHORIZED',
      bearerOf(req) === undefined
        ? 'this stream needs the Bearer token it was published with'
        : 'wrong Bearer token for this stream',
    );
  };

  /**
   * Scale-out: a request for a stream another node runs is sent on to that node (its answer is
   * ours); a stream whose node ended it or was lost gets 404 saying so. False: this node answers.
   */
  const forwardElsewhere = async (
    req: FastifyRequest,
    reply: FastifyReply,
    key: string,
    opts_: { byId?: boolean; redirect?: boolean } = {},
  ): Promise<boolean> => {
    if (!opts.streams.cluster.shared || req.headers[HOP_HEADER] !== undefined) return false;
    if (opts.streams.isLocal(key, opts_)) return false;
    const found = await opts.streams.locate(key);
    if (found.state === 'unknown') return false;
    if (found.state === 'ended') {
      throw new LiveError(
        404,
        'NO_SUCH_STREAM',
        found.nodeLost ? 'stream ended (node lost)' : `stream ended: ${found.reason}`,
      );
    }
    const target = `${found.record.nodeUrl}${req.url}`;
    if (opts_.redirect) {
      // WHEP: the viewer's peer must be on the owning node; 307 keeps the POST and its body.
      reply.code(307).header('Location', target).send();
      return true;
    }
    const headers: Record<string, string> = { [HOP_HEADER]: '1' };
    for (const h of ['authorization', 'content-type', 'if-match']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const body =
      req.method === 'GET' || req.method === 'DELETE' || req.body === undefined
        ? undefined
        : typeof req.body === 'string'
          ? req.body
          : JSON.stringify(req.body);
    let answer: Response;
    try {
      answer = await fetch(target, {
        method: req.method,
        headers,
        body,
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
      });
    } catch (err) {
      req.log.warn(
        { stream: key, node: found.record.nodeUrl, err: (err as Error).message },
        'owning node unreachable',
      );
      throw new LiveError(
        502,
        'NODE_UNREACHABLE',
        `the node running stream "${key}" does not answer; if it is gone the stream ends within the lease`,
      );
    }
    reply.code(answer.status);
    for (const h of ['content-type', 'etag', 'location', 'www-authenticate', 'accept-patch', 'retry-after']) {
      const v = answer.headers.get(h);
      if (v !== null) reply.header(h, v);
    }
    reply.send(Buffer.from(await answer.arrayBuffer()));
    return true;
  };

  app.delete<{ Params: ResourceParams }>(`${BASE}/whip/:id`, async (req, reply) => {
    if (await forwardElsewhere(req, reply, req.params.stream)) return reply;
    requireStreamCredential(req, req.params.stream);
    await opts.streams.unpublish(req.params.stream, req.params.id);
    return reply.code(200).send();
  });

  // PATCH routes in their own context: a catch-all body parser there lets a wrong Content-Type get
  // our 415 (not fastify's), and the fragment limit applies to PATCH bodies only.
  await app.register(async (patches) => {
    patches.removeAllContentTypeParsers();
    patches.addContentTypeParser(
      '*',
      { parseAs: 'string', bodyLimit: SDPFRAG_LIMITS.bytes },
      (_req, body, done) => done(null, body),
    );
    for (const kind of ['whip', 'whep'] as const) {
      patches.patch<{ Params: ResourceParams; Body: unknown }>(`${BASE}/${kind}/:id`, async (req, reply) => {
        if (await forwardElsewhere(req, reply, req.params.stream)) return reply;
        if (kind === 'whip') requireStreamCredential(req, req.params.stream);
        else requireBearer(req, opts.whepAuthToken);
        const stream = streamName(req.params.stream);
        const type = contentType(req);
        if (type !== SDPFRAG_CONTENT_TYPE) {
          throw new LiveError(
            415,
            'UNSUPPORTED_MEDIA_TYPE',
            `PATCH needs Content-Type: ${SDPFRAG_CONTENT_TYPE} (got ${type || 'none'})`,
          );
        }
        const body = typeof req.body === 'string' ? req.body : '';
        const ifMatch = req.headers['if-match'];
        const result = await opts.streams.patchIce(stream, { kind, id: req.params.id }, ifMatch, body);
        // RFC 9725 §4.3.2: trickled candidates get 204 with no body and no ETag.
        if (result.kind === 'trickle') return reply.code(204).send();
        return reply
          .code(200)
          .header('Content-Type', SDPFRAG_CONTENT_TYPE)
          .header('ETag', result.etag)
          .send(result.fragment);
      });
    }
  });

  app.post<{ Params: StreamParams; Body: unknown }>(`${BASE}/whep`, async (req, reply) => {
    requireBearer(req, opts.whepAuthToken);
    const stream = streamName(req.params.stream);
    if (await forwardElsewhere(req, reply, stream, { redirect: true })) return reply;
    const offer = sdpBody(req);
    const { viewerId, answerSdp, etag } = await opts.streams.view(stream, offer);
    // Scale-out: absolute, so a client that was redirected here sends DELETE/PATCH here too.
    const location = `${opts.clusterNodeUrl ?? ''}/live/video-to-video/${encodeURIComponent(stream)}/whep/${viewerId}`;
    return created(reply, location, etag, answerSdp, opts.iceServers).send(answerSdp);
  });

  app.delete<{ Params: ResourceParams }>(`${BASE}/whep/:id`, async (req, reply) => {
    if (await forwardElsewhere(req, reply, req.params.stream)) return reply;
    requireBearer(req, opts.whepAuthToken);
    await opts.streams.unview(req.params.stream, req.params.id);
    return reply.code(200).send();
  });

  app.post<{ Params: StreamParams; Body: unknown }>(`${BASE}/update`, async (req, reply) => {
    if (await forwardElsewhere(req, reply, req.params.stream)) return reply;
    requireStreamCredential(req, req.params.stream);
    if (!isJson(req))
      throw new LiveError(415, 'UNSUPPORTED_MEDIA_TYPE', 'update needs Content-Type: application/json');
    const params = req.body;
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      throw new LiveError(400, 'BAD_PARAMS', 'update body must be a JSON object of pipeline params');
    }
    await opts.streams.update(req.params.stream, params as Record<string, unknown>);
    return reply.code(200).send({ ok: true });
  });

  // By stream name, or by go-livepeer's stream id (the path its clients use).
  app.get<{ Params: StreamParams }>(`${BASE}/status`, async (req, reply) => {
    if (await forwardElsewhere(req, reply, req.params.stream, { byId: true })) return reply;
    requireStreamCredential(req, req.params.stream, { status: true });
    return opts.streams.status(req.params.stream);
  });

  // Protected streams are listed to the operator only; the others see how many were left out.
  app.get('/live/streams', async (req) => {
    const all =
      carries(req, opts.operatorToken) || (!!opts.whipAuthToken && carries(req, opts.whipAuthToken));
    const streams = opts.streams.list({ open: !all });
    return { streams, hidden: all ? 0 : opts.streams.liveCount - streams.length };
  });
};

/**
 * What a publish query asks for (WHIP's, or the RTMP stream key's): ours (`model`) and
 * go-livepeer's (`pipeline`, `params`, `streamId`, `rtmpOutput`).
 */
export function publishQuery(query: string, defaultModel: string): Omit<PublishOptions, 'credential'> {
  const q = new URLSearchParams(query);
  const model = q.get('model') || q.get('pipeline') || defaultModel;
  if (!MODEL_ID.test(model)) {
    throw new LiveError(400, 'BAD_MODEL', 'model must be 1-128 letters, digits, ".", "_", "/" or "-"');
  }
  const job: Omit<PublishOptions, 'credential'> = { modelId: model, params: {} };
  const raw = q.get('params');
  if (raw) {
    let params: unknown;
    try {
      params = parseClientJson(raw);
    } catch (err) {
      throw new LiveError(400, 'BAD_PARAMS', `params must be a JSON object: ${(err as Error).message}`);
    }
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      throw new LiveError(400, 'BAD_PARAMS', 'params must be a JSON object');
    }
    if (jsonDepth(params, MAX_QUERY_PARAMS_DEPTH) > MAX_QUERY_PARAMS_DEPTH) {
      throw new LiveError(
        400,
        'BAD_PARAMS',
        `params must not be nested deeper than ${MAX_QUERY_PARAMS_DEPTH}`,
      );
    }
    job.params = params as Record<string, unknown>;
  }
  const streamId = q.get('streamId');
  if (streamId) {
    if (streamId.length > MAX_ID_LENGTH || /[^\x21-\x7e]/.test(streamId)) {
      throw new LiveError(
        400,
        'BAD_STREAM_ID',
        `streamId must be at most ${MAX_ID_LENGTH} printable characters`,
      );
    }
    job.streamId = streamId;
  }
  const rtmp = q.get('rtmpOutput');
  if (rtmp) {
    if (rtmp.length > 2048 || !/^rtmps?:\/\/[^\s/]\S*$/i.test(rtmp)) {
      throw new LiveError(400, 'BAD_RTMP_OUTPUT', 'rtmpOutput must be an rtmp:// or rtmps:// URL');
    }
    job.rtmpOutputUrl = rtmp;
  }
  return job;
}

function publicBase(req: FastifyRequest, publicUrl?: string): string {
  return (publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/+$/, '');
}

export function streamName(name: string): string {
  if (!STREAM_NAME.test(name)) {
    throw new LiveError(400, 'BAD_STREAM_NAME', 'stream name must be 1-128 letters, digits, ".", "_" or "-"');
  }
  return name;
}

function contentType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

function sdpBody(req: FastifyRequest): string {
  const type = contentType(req);
  if (type !== 'application/sdp') {
    throw new LiveError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `offer must be Content-Type: application/sdp (got ${type || 'none'})`,
    );
  }
  if (typeof req.body !== 'string' || req.body.trim() === '')
    throw new LiveError(400, 'BAD_SDP', 'empty SDP offer');
  return req.body;
}

function isJson(req: FastifyRequest): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
}

function created(
  reply: FastifyReply,
  location: string,
  etag: string,
  answerSdp: string,
  iceServers: readonly IceServer[],
): FastifyReply {
  reply
    .code(201)
    .header('Content-Type', 'application/sdp')
    .header('Location', location)
    // The ICE session's entity-tag: PATCHes name it in If-Match (RFC 9725 §4.3.1).
    .header('ETag', etag)
    .header('Accept-Patch', SDPFRAG_CONTENT_TYPE)
    .header('Content-Length', Buffer.byteLength(answerSdp));
  const links = iceLinks(iceServers);
  if (links.length) reply.header('Link', links);
  return reply;
}

/** RFC 9725 §4.6: one Link per ICE server, TURN credentials as attributes. */
export function iceLinks(servers: readonly IceServer[]): string[] {
  const links: string[] = [];
  for (const server of servers) {
    for (const url of server.urls) {
      let link = `<${url}>; rel="ice-server"`;
      if (server.username !== undefined && server.credential) {
        link += `; username="${quote(server.username)}"; credential="${quote(server.credential.reveal())}"; credential-type="password"`;
      }
      links.push(link);
    }
  }
  return links;
}

const quote = (s: string) => s.replace(/["\\]/g, '\\$&');
