// WHIP ingest, WHEP playback, param updates and status for live video-to-video, on
// go-livepeer's paths (/live/video-to-video/{stream}/...) so existing clients work.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { IceServer, Secret } from '../config/index.ts';
import { LiveError } from '../live/errors.ts';
import type { LiveStreams } from '../live/registry.ts';
import { decodeSdp, SDP_LIMITS, SDPFRAG_CONTENT_TYPE, SDPFRAG_LIMITS } from '../webrtc/index.ts';

export interface LiveRoutesOptions {
  streams: LiveStreams;
  iceServers: readonly IceServer[];
  whipAuthToken?: Secret;
  defaultModel: string;
  /** Base of absolute URLs we hand out (https://gw.example.com); default: the request's scheme and Host. */
  publicUrl?: string;
}

const BASE_PATH = '/live/video-to-video';
const BASE = `${BASE_PATH}/:stream`;
const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

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

  app.post<{ Params: StreamParams; Querystring: { model?: string }; Body: unknown }>(
    `${BASE}/whip`,
    async (req, reply) => {
      requireBearer(req, opts.whipAuthToken);
      const stream = streamName(req.params.stream);
      const offer = sdpBody(req);
      const modelId =
        typeof req.query.model === 'string' && req.query.model ? req.query.model : opts.defaultModel;
      const { sessionId, answerSdp, etag } = await opts.streams.publish(stream, offer, {
        modelId,
        params: {},
      });
      const location = `/live/video-to-video/${encodeURIComponent(stream)}/whip/${sessionId}`;
      // go-livepeer's header (media/whip_server.go); Daydream's browser SDK plays this URL.
      reply.header(
        'Livepeer-Playback-URL',
        `${publicBase(req, opts.publicUrl)}${BASE_PATH}/${encodeURIComponent(stream)}/whep`,
      );
      return created(reply, location, etag, answerSdp, opts.iceServers).send(answerSdp);
    },
  );

  app.delete<{ Params: ResourceParams }>(`${BASE}/whip/:id`, async (req, reply) => {
    requireBearer(req, opts.whipAuthToken);
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
        if (kind === 'whip') requireBearer(req, opts.whipAuthToken);
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
    const stream = streamName(req.params.stream);
    const offer = sdpBody(req);
    const { viewerId, answerSdp, etag } = await opts.streams.view(stream, offer);
    const location = `/live/video-to-video/${encodeURIComponent(stream)}/whep/${viewerId}`;
    return created(reply, location, etag, answerSdp, opts.iceServers).send(answerSdp);
  });

  app.delete<{ Params: ResourceParams }>(`${BASE}/whep/:id`, async (req, reply) => {
    await opts.streams.unview(req.params.stream, req.params.id);
    return reply.code(200).send();
  });

  app.post<{ Params: StreamParams; Body: unknown }>(`${BASE}/update`, async (req, reply) => {
    if (!isJson(req))
      throw new LiveError(415, 'UNSUPPORTED_MEDIA_TYPE', 'update needs Content-Type: application/json');
    const params = req.body;
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      throw new LiveError(400, 'BAD_PARAMS', 'update body must be a JSON object of pipeline params');
    }
    await opts.streams.update(req.params.stream, params as Record<string, unknown>);
    return reply.code(200).send({ ok: true });
  });

  app.get<{ Params: StreamParams }>(`${BASE}/status`, async (req) => opts.streams.status(req.params.stream));

  app.get('/live/streams', async () => ({ streams: opts.streams.list() }));
};

function publicBase(req: FastifyRequest, publicUrl: string | undefined): string {
  return (publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/+$/, '');
}

function streamName(name: string): string {
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

function requireBearer(req: FastifyRequest, token: Secret | undefined): void {
  if (!token) return;
  const header = req.headers.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  if (!match || !token.equals(match[1].trim())) {
    throw new LiveError(401, 'UNAUTHORIZED', 'missing or wrong Bearer token');
  }
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
