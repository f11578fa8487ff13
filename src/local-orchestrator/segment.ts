// The local orchestrator's segment transcoding, as go-livepeer's orchestrator answers it
// (server/segment_rpc.go ServeSegment): POST /segment with Livepeer-Payment and Livepeer-Segment,
// the segment as the body; 200 is sent as soon as the upload checks out, then ffmpeg runs and the
// body is a TranscodeResult protobuf whose renditions are URLs this orchestrator serves under
// /stream/{session}/{profile}/{seq}.{ext}, as go-livepeer's memory object store does.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Hex } from 'viem';
import {
  formatExtension,
  formatMimeType,
  ProfileError,
  profilesOf,
  type TranscodeProfile,
} from '../batch/profiles.ts';
import { keccak256Of } from '../batch/transcode-hash.ts';
import type { OrchestratorFault } from '../config/fault.ts';
import { mul, rat as ratio } from '../payments/rational.ts';
import {
  type AuthToken,
  encodeMessage,
  type OrchestratorInfo,
  type Payment,
  type SegData,
  type TranscodeResult,
} from '../wire/lp-rpc.ts';
import { CredentialError } from './credentials.ts';
import { type Recipient, toAddress } from './recipient.ts';
import { TranscodeFailure, transcodeSegment } from './transcode.ts';

/** go-livepeer's common.MaxDuration: a longer SegData.duration is refused. */
const MAX_DURATION_MS = 5 * 60 * 1000;
/** go-livepeer's MaxSegSize: 5 min at 8 Mb/s. */
export const MAX_SEGMENT_BYTES = 300 * 1_000_000;
/** go-livepeer's transcodeLoopTimeout: a session's renditions are dropped after this long unused. */
const SESSION_IDLE_MS = 70_000;
/** Renditions kept per session (the newest); gateways download them right after the reply. */
const FILES_PER_SESSION = 64;

export interface SegmentRouteOptions {
  /** The orchestrator's https://host:port, known once it listens. */
  baseUrl: () => string;
  checkCredentials: (
    headers: Record<string, unknown>,
  ) => Promise<{ payment: Payment; segment: SegData } | CredentialError>;
  /** ProcessPayment against a balance key; the refusal text, or undefined when accepted. */
  processPayment: (payment: Payment, balanceKey: string) => Promise<string | undefined>;
  recipient?: Recipient;
  /** Fresh info for the payment's sender, keeping the auth token the request carried. */
  info: (authToken: AuthToken | undefined, sender: Uint8Array | undefined) => OrchestratorInfo;
  /** Capabilities this orchestrator has (bitstring words). */
  capabilities: () => bigint[];
  fault: () => OrchestratorFault;
  logger: Logger;
  /** ffmpeg runs at once; more wait their turn. */
  concurrency: number;
  transcodeTimeoutMs?: number;
}

interface StoredFile {
  data: Buffer;
  type: string;
}

/** Renditions by session, newest kept, idle sessions dropped. */
class RenditionStore {
  private readonly sessions = new Map<string, { usedAt: number; files: Map<string, StoredFile> }>();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sweep(), 10_000);
    this.timer.unref();
  }

  put(session: string, path: string, file: StoredFile): void {
    let s = this.sessions.get(session);
    if (!s) {
      s = { usedAt: Date.now(), files: new Map() };
      this.sessions.set(session, s);
    }
    s.usedAt = Date.now();
    s.files.delete(path);
    s.files.set(path, file);
    while (s.files.size > FILES_PER_SESSION) s.files.delete(s.files.keys().next().value as string);
  }

  get(session: string, path: string): StoredFile | undefined {
    return this.sessions.get(session)?.files.get(path);
  }

  private sweep(): void {
    const cutoff = Date.now() - SESSION_IDLE_MS;
    for (const [id, s] of this.sessions) if (s.usedAt < cutoff) this.sessions.delete(id);
  }

  close(): void {
    clearInterval(this.timer);
    this.sessions.clear();
  }
}

/** At most `max` tasks at once; the rest wait in order, and leave the line when aborted. */
class Gate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    while (this.active >= this.max) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', leave);
          resolve();
        };
        const leave = () => {
          const i = this.waiting.indexOf(wake);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new TranscodeFailure('transcoding cancelled: the gateway went away'));
        };
        if (signal?.aborted) return leave();
        signal?.addEventListener('abort', leave, { once: true });
        this.waiting.push(wake);
      });
    }
    if (signal?.aborted) {
      // Woken but no longer wanted: pass the turn on.
      this.waiting.shift()?.();
      throw new TranscodeFailure('transcoding cancelled: the gateway went away');
    }
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

const text = (reply: FastifyReply, status: number, message: string) =>
  reply.code(status).type('text/plain; charset=utf-8').send(message);

export const segmentRoutes: FastifyPluginAsync<SegmentRouteOptions> = async (app, opts) => {
  const store = new RenditionStore();
  const gate = new Gate(Math.max(1, opts.concurrency));
  app.addHook('onClose', async () => store.close());
  // go-livepeer reads the body whatever its type (video/MP2T, or a URI with application/vnd+livepeer.uri).
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_SEGMENT_BYTES }, (_req, body, done) =>
    done(null, body),
  );

  app.post('/segment', { bodyLimit: MAX_SEGMENT_BYTES }, async (req, reply) => {
    const creds = await opts.checkCredentials(req.headers);
    if (creds instanceof CredentialError) return text(reply, creds.status, creds.message);
    const { payment, segment } = creds;
    // The rest of go-livepeer's verifySegCreds: capabilities, profiles, duration (all 403).
    const wanted = segment.capabilities?.bitstring ?? [];
    const ours = opts.capabilities();
    if (!wanted.every((word, i) => (word & (ours[i] ?? 0n)) === word)) {
      return text(reply, 403, 'incompatible capabilities');
    }
    let profiles: TranscodeProfile[];
    try {
      profiles = profilesOf(segment);
    } catch (err) {
      if (err instanceof ProfileError) return text(reply, 403, err.message);
      throw err;
    }
    const durationMs = segment.duration ?? 0;
    if (durationMs < 0 || durationMs > MAX_DURATION_MS) return text(reply, 403, 'invalid duration');

    // go-livepeer keys a transcoding session's balance by the auth token's session id.
    const session = segment.authToken?.sessionId ?? '';
    const info = opts.info(segment.authToken, payment.sender);
    const refused = await opts.processPayment(payment, session);
    if (refused) return text(reply, 400, refused);
    const sender = toAddress(payment.sender);
    const recipient = opts.recipient;
    if (
      recipient &&
      (payment.expectedPrice?.pricePerUnit ?? 0n) > 0n &&
      !recipient.sufficientBalance(sender, session)
    ) {
      return text(reply, 400, 'Insufficient balance');
    }

    if (req.headers['content-type'] === 'application/vnd+livepeer.uri') {
      return text(reply, 400, 'this orchestrator takes the segment in the body, not as a URI to download');
    }
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const hash = await keccak256Of(body);
    if (!segment.hash || Buffer.compare(Buffer.from(hash), Buffer.from(segment.hash)) !== 0) {
      return text(reply, 403, 'Forbidden');
    }
    const fault = opts.fault().kind;
    if (fault === 'fail-start') {
      return text(reply, 500, 'failed to transcode segment: injected fault fail-start');
    }
    if (fault === 'hang') {
      // A hung transcoder: not even the early 200; the gateway's upload timeout has to notice.
      opts.logger.warn({ session, seq: String(segment.seq ?? 0n) }, 'injected fault hang: never answering');
      reply.hijack();
      return;
    }

    // As go-livepeer: 200 as soon as the upload checks out; any later error is in the result.
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    (res as { flushHeaders?: () => void }).flushHeaders?.();

    // A gateway that gave up (timeout, its client gone) closes the request: a queued job leaves
    // the queue and a running ffmpeg is killed, so no CPU goes to answers nobody reads.
    const cancel = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) cancel.abort();
    });
    const seq = segment.seq ?? 0n;
    const result: TranscodeResult = { seq, info };
    const started = performance.now();
    try {
      const renditions = await gate.run(
        () =>
          transcodeSegment(body, profiles, {
            timeoutMs: opts.transcodeTimeoutMs ?? 60_000,
            signal: cancel.signal,
          }),
        cancel.signal,
      );
      const base = opts.baseUrl();
      let pixels = 0n;
      result.data = {
        segments: renditions.map((r) => {
          const format = r.profile.format === 'mp4' ? 'mp4' : 'mpegts';
          const path = `${encodeURIComponent(r.profile.name)}/${seq}${formatExtension(format)}`;
          store.put(session, path, { data: r.data, type: formatMimeType(format) });
          pixels += r.pixels;
          return { url: `${base}/stream/${encodeURIComponent(session)}/${path}`, pixels: r.pixels };
        }),
      };
      // DebitFees: the output pixels at the price the payment expected.
      const expected = payment.expectedPrice;
      if (recipient && expected?.pricePerUnit && expected.pixelsPerUnit) {
        recipient.debit(
          sender as Hex,
          session,
          mul(ratio(pixels), ratio(expected.pricePerUnit, expected.pixelsPerUnit)),
        );
      }
      opts.logger.debug(
        {
          session,
          seq: String(seq),
          profiles: profiles.map((p) => p.name),
          ms: Math.round(performance.now() - started),
        },
        'segment transcoded',
      );
    } catch (err) {
      const message =
        err instanceof TranscodeFailure ? err.message : `transcoding failed: ${(err as Error).message}`;
      if (!cancel.signal.aborted) opts.logger.warn({ session, seq: String(seq) }, message);
      result.error = message;
    }
    if (cancel.signal.aborted) {
      opts.logger.debug({ session, seq: String(seq) }, 'segment cancelled: the gateway went away');
      return;
    }
    res.end(Buffer.from(encodeMessage('TranscodeResult', result)));
  });

  app.get<{ Params: { session: string; profile: string; file: string } }>(
    '/stream/:session/:profile/:file',
    async (req, reply) => {
      const { session, profile, file } = req.params;
      const found = store.get(session, `${encodeURIComponent(profile)}/${file}`);
      if (!found) return text(reply, 404, `404 page not found: ${req.url}`);
      return reply.type(found.type).send(found.data);
    },
  );
};
