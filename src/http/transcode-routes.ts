// Segment transcoding over HTTP push, as go-livepeer's gateway serves it (server/mediaserver.go
// HandlePush): PUT or POST /live/{manifestId}/{seq}.ts (or .mp4) with Content-Duration (ms) and
// Content-Resolution; the answer is 200 once every rendition is back, with the renditions as
// multipart/mixed parts when the client sends Accept: multipart/mixed. Every MPEG-TS rendition is
// also kept for HLS playback under /stream/. Failures answer as HandlePush does: 500 when every
// orchestrator tried failed, 422 for an untranscodable segment, 503 when none could be used.
import { Readable } from 'node:stream';
import type { FastifyError, FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { BatchError } from '../batch/errors.ts';
import { HlsStreams } from '../batch/hls.ts';
import { formatExtension, formatMimeType, resolveFormats, type TranscodeProfile } from '../batch/profiles.ts';
import { type Rendition, type TranscodePool, Transcoder } from '../batch/transcode.ts';
import { probeSegment } from '../batch/transcode-input.ts';
import type { LivePayments } from '../live/live-payer.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { floatString } from '../payments/rational.ts';
import { BUSY_RETRY_AFTER_S, InputError, sendInputError } from './input-guard.ts';

export interface TranscodeRoutesOptions {
  pool: TranscodePool;
  identity: GatewayIdentity;
  /** On-chain payments; absent: off-chain. */
  payments?: LivePayments;
  /** From -transcodingOptions. */
  profiles: readonly TranscodeProfile[];
  /** Largest pushed segment (413 above). */
  maxSegmentBytes: number;
  /**
   * Pushes served at once (-transcodeMaxInFlight); more get 503 with Retry-After before their body
   * is read. Each holds its segment and its renditions in memory. Absent: no cap.
   */
  maxInFlight?: number;
  /** Orchestrators tried per segment. */
  maxAttempts: number;
  /** HLS: segments kept per rendition, idle stream expiry, streams kept. */
  hlsWindowSegments: number;
  streamIdleTimeoutMs: number;
  maxStreams: number;
  logger: Logger;
}

/** go-livepeer's common.MaxDuration. */
const MAX_DURATION_MS = 5 * 60 * 1000;
/** go-livepeer fills in 2 s when Content-Duration is absent. */
const DEFAULT_DURATION_MS = 2000;
// go-livepeer ignores the type; we refuse only bodies that say they are something else. curl's
// --data-binary sends application/x-www-form-urlencoded, so that passes (the body is probed anyway).
const ACCEPTED_TYPES = new Set([
  'video/mp2t',
  'video/mp4',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
]);

export const transcodeRoutes: FastifyPluginAsync<TranscodeRoutesOptions> = async (app, opts) => {
  const log = opts.logger.child({ component: 'transcode-http' });
  const transcoder = new Transcoder({
    pool: opts.pool,
    identity: opts.identity,
    payments: opts.payments,
    maxAttempts: opts.maxAttempts,
    maxRenditionBytes: opts.maxSegmentBytes * 4,
    logger: opts.logger,
  });
  /** Each stream's profiles, formats fixed at its first push (as go-livepeer does). */
  const streamProfiles = new Map<string, TranscodeProfile[]>();
  const hls = new HlsStreams({
    windowSegments: opts.hlsWindowSegments,
    idleTimeoutMs: opts.streamIdleTimeoutMs,
    maxStreams: opts.maxStreams,
    onExpire: (manifestId) => {
      streamProfiles.delete(manifestId);
      transcoder.endStream(manifestId);
      log.info({ manifestId }, 'transcoding stream ended (idle or evicted)');
    },
  });
  app.addHook('onClose', async () => hls.close());

  // Any body is read as bytes (JSON too, so that it gets a 415, not a parse error); the handler
  // says which types it takes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.maxSegmentBytes }, (_req, body, done) =>
    done(null, body),
  );

  app.setErrorHandler((err: FastifyError | BatchError, req, reply) => {
    if (err instanceof InputError) return sendInputError(err, reply);
    if (err instanceof BatchError) {
      if (err.attempts) reply.header('Livepeer-Tries', String(err.attempts.tries));
      if (err.status >= 500) req.log.warn({ code: err.code }, err.message);
      return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...err.details } });
    }
    if (err.statusCode === 413) {
      return reply.code(413).send({
        error: {
          code: 'PAYLOAD_TOO_LARGE',
          message: `segment is larger than the limit of ${opts.maxSegmentBytes} bytes (-transcodeMaxSegmentBytes)`,
        },
      });
    }
    if (err.statusCode === 415) {
      return reply.code(415).send({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'transcode request failed');
    return reply.code(status).send({
      error: { code: status === 400 ? 'BAD_REQUEST' : (err.code ?? 'INTERNAL'), message: err.message },
    });
  });

  // Counted before the body is read: a refused push costs no memory.
  let inFlight = 0;
  const maxInFlight = opts.maxInFlight;
  app.addHook('onRequest', async (req, reply) => {
    if (maxInFlight === undefined || (req.method !== 'PUT' && req.method !== 'POST')) return;
    if (inFlight >= maxInFlight) {
      reply.header('Retry-After', String(BUSY_RETRY_AFTER_S));
      reply.header('Access-Control-Allow-Origin', '*');
      throw new InputError(
        503,
        'BUSY',
        `the gateway is transcoding its limit of ${maxInFlight} segments at once (-transcodeMaxInFlight); try again shortly`,
      );
    }
    inFlight++;
    reply.raw.once('close', () => inFlight--);
  });

  // Players and upload tools on other origins (hls.js in a web page) read these routes.
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('Access-Control-Allow-Origin', '*');
    reply.header('Access-Control-Expose-Headers', 'Livepeer-Orchestrator, Livepeer-Tries, Livepeer-Fee-Wei');
  });

  const push = async (
    req: {
      params: { manifestId: string; segment: string };
      headers: Record<string, string | string[] | undefined>;
      body: unknown;
    },
    reply: FastifyReply,
  ) => {
    const { manifestId, segment } = req.params;
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(manifestId)) {
      throw new BatchError(
        400,
        'BAD_MANIFEST_ID',
        `manifest id "${manifestId}" must be 1-128 letters, digits, "_" or "-"`,
      );
    }
    const m = /^(\d{1,18})\.([A-Za-z0-9]+)$/.exec(segment);
    const ext = m?.[2] ?? (segment.includes('.') ? segment.slice(segment.lastIndexOf('.') + 1) : '');
    if (ext !== 'ts' && ext !== 'mp4') {
      throw new BatchError(
        400,
        'UNKNOWN_EXTENSION',
        ext
          ? `ignoring file extension .${ext}: push .ts or .mp4 segments`
          : `segment "${segment}" has no extension: push <seq>.ts or <seq>.mp4`,
      );
    }
    if (!m)
      throw new BatchError(
        400,
        'BAD_SEQUENCE',
        `segment name "${segment}" must be <seq>.${ext}, seq a non-negative integer`,
      );
    const format = ext === 'mp4' ? 'mp4' : 'mpegts';
    const seq = BigInt(m[1]!);

    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== '' && !ACCEPTED_TYPES.has(type)) {
      throw new BatchError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `Content-Type ${type} is not a video segment: send video/mp2t, video/mp4 or application/octet-stream`,
      );
    }
    const durationMs = parseDuration(req.headers['content-duration']);
    const resolution = parseResolution(req.headers['content-resolution']);
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) throw new BatchError(400, 'EMPTY_BODY', 'the segment body is empty');
    const probed = probeSegment(format, body);
    if (!probed.ok) throw new BatchError(422, 'UNREADABLE_SEGMENT', probed.reason);

    const profiles = streamProfiles.get(manifestId) ?? resolveFormats(opts.profiles, format);
    // The pusher gone before its answer: stop the orchestrator's work (go-livepeer's request
    // context does the same).
    const cancel = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableEnded) cancel.abort();
    });
    const outcome = await transcoder.transcode({
      manifestId,
      seq,
      data: body,
      durationMs,
      profiles,
      resolution,
      signal: cancel.signal,
    });
    // Kept once a segment went through: the HLS store's expiry then forgets the stream for good.
    streamProfiles.set(manifestId, profiles);
    hls.add(manifestId, seq, durationMs, outcome.renditions);
    reply
      .header('Livepeer-Orchestrator', outcome.orchestrator)
      .header('Livepeer-Tries', String(outcome.tries))
      .header('Livepeer-Fee-Wei', floatString(outcome.fee, 0));
    if (!acceptsMultipart(req.headers.accept)) return reply.code(200).send();
    const boundary = `lpgw${crypto.randomUUID().replaceAll('-', '')}`;
    return reply
      .code(200)
      .type(`multipart/mixed; boundary=${boundary}`)
      .send(Readable.from(multipartParts(outcome.renditions, seq, boundary)));
  };

  app.put<{ Params: { manifestId: string; segment: string } }>('/live/:manifestId/:segment', (req, reply) =>
    push(req, reply),
  );
  app.post<{ Params: { manifestId: string; segment: string } }>('/live/:manifestId/:segment', (req, reply) =>
    push(req, reply),
  );

  // HLS playback of what was pushed.
  app.get<{ Params: { file: string } }>('/stream/:file', async (req, reply) => {
    const id = stripSuffix(req.params.file, '.m3u8');
    const text = id === undefined ? undefined : hls.master(id);
    if (text === undefined) return notFound(reply, `no transcoded stream ${req.params.file}`);
    return reply.type('application/vnd.apple.mpegurl').header('Cache-Control', 'no-cache').send(text);
  });
  app.get<{ Params: { manifestId: string; file: string } }>(
    '/stream/:manifestId/:file',
    async (req, reply) => {
      const name = stripSuffix(req.params.file, '.m3u8');
      const text = name === undefined ? undefined : hls.media(req.params.manifestId, name);
      if (text === undefined)
        return notFound(reply, `no rendition playlist ${req.params.manifestId}/${req.params.file}`);
      return reply.type('application/vnd.apple.mpegurl').header('Cache-Control', 'no-cache').send(text);
    },
  );
  app.get<{ Params: { manifestId: string; rendition: string; file: string } }>(
    '/stream/:manifestId/:rendition/:file',
    async (req, reply) => {
      const { manifestId, rendition, file } = req.params;
      const m = /^(\d{1,18})\.ts$/.exec(file);
      const data = m ? hls.segment(manifestId, rendition, BigInt(m[1]!)) : undefined;
      if (!data)
        return notFound(
          reply,
          `no segment ${manifestId}/${rendition}/${file} (it may have left the playlist window)`,
        );
      return reply.type('video/mp2t').header('Cache-Control', 'max-age=60').send(data);
    },
  );
};

function notFound(reply: FastifyReply, message: string) {
  return reply.code(404).send({ error: { code: 'NOT_FOUND', message } });
}

function stripSuffix(s: string, suffix: string): string | undefined {
  return s.endsWith(suffix) && s.length > suffix.length ? s.slice(0, -suffix.length) : undefined;
}

/** Content-Duration: whole milliseconds; absent means 2000 ms, as go-livepeer assumes. */
function parseDuration(raw: string | string[] | undefined): number {
  if (raw === undefined) return DEFAULT_DURATION_MS;
  const s = Array.isArray(raw) ? raw[0]! : raw;
  if (!/^\d{1,9}$/.test(s.trim())) {
    throw new BatchError(
      400,
      'BAD_DURATION',
      `Content-Duration must be the segment's duration in whole milliseconds (got "${s}")`,
    );
  }
  const ms = Number(s.trim());
  if (ms <= 0 || ms > MAX_DURATION_MS) {
    throw new BatchError(
      400,
      'BAD_DURATION',
      `Content-Duration must be from 1 to ${MAX_DURATION_MS} ms (got ${ms})`,
    );
  }
  return ms;
}

/** Content-Resolution: WIDTHxHEIGHT of the pushed video, optional as in go-livepeer. */
function parseResolution(raw: string | string[] | undefined): { width: number; height: number } | undefined {
  if (raw === undefined) return undefined;
  const s = (Array.isArray(raw) ? raw[0]! : raw).trim();
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(s);
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (!m || width < 1 || height < 1) {
    throw new BatchError(
      400,
      'BAD_RESOLUTION',
      `Content-Resolution must be WIDTHxHEIGHT, e.g. 1280x720 (got "${s}")`,
    );
  }
  return { width, height };
}

function acceptsMultipart(accept: string | string[] | undefined): boolean {
  const s = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  return s.split(',').some((t) => t.split(';')[0]!.trim().toLowerCase() === 'multipart/mixed');
}

/** go-livepeer's multipart answer: one part per rendition, in profile order. */
async function* multipartParts(
  renditions: Rendition[],
  seq: bigint,
  boundary: string,
): AsyncGenerator<Buffer> {
  for (const [i, r] of renditions.entries()) {
    const format = r.profile.format === 'mp4' ? 'mp4' : 'mpegts';
    const fileName = `"${r.profile.name}_${seq}${formatExtension(format)}"`;
    // Header keys sorted, as Go's multipart.Writer writes them.
    const head = [
      `${i === 0 ? '' : '\r\n'}--${boundary}`,
      `Content-Disposition: attachment; filename=${fileName}`,
      `Content-Length: ${r.data.length}`,
      `Content-Type: ${formatMimeType(format)}; name=${fileName}`,
      `Rendition-Name: ${r.profile.name}`,
      '',
      '',
    ].join('\r\n');
    yield Buffer.from(head, 'utf8');
    yield r.data;
  }
  yield Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
}
