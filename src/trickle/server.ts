import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Logger } from 'pino';
import { Channel, type Segment } from './channel.ts';
import {
  CLOSED_HEADER,
  headerValue,
  LATEST_HEADER,
  parseSeq,
  RESET_HEADER,
  SEQ_CURRENT,
  SEQ_HEADER,
  SEQ_NEXT,
  STATUS_SEGMENT_NOT_FOUND,
} from './protocol.ts';

export interface TrickleServerOptions {
  /** Path prefix of every channel, e.g. `/ai/trickle/`. */
  basePath: string;
  /** Create unknown channels on their first POST instead of answering 404. */
  autocreate?: boolean;
  /** Close channels that started no segment for this long. Default 5 minutes. */
  idleTimeoutMs?: number;
  /** How often to look for idle channels. Default 1 minute. */
  sweepIntervalMs?: number;
  /** A segment larger than this is cut off with 413 (segments are held in memory). Default 64 MiB. */
  maxSegmentBytes?: number;
  logger?: Logger;
}

type TrickleRequest = IncomingMessage | Http2ServerRequest;
type TrickleResponse = ServerResponse | Http2ServerResponse;

/** The part of both the HTTP/1 and the HTTP/2 compat response this server uses. */
interface Response {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  setHeader(name: string, value: string): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  end(body: string): unknown;
  once(event: 'drain', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
const CLOSED_VALUE = 'terminated';

/**
 * Server side of trickle, Livepeer's segmented HTTP pub/sub.
 *
 * Framework-agnostic: the host passes raw Node requests to `handle()`. The host server must be created
 * with `requestTimeout: 0`, because publishers preconnect the next segment's POST and may hold it open,
 * body-less, for as long as the current segment lasts.
 */
export class TrickleServer {
  readonly #basePath: string;
  readonly #autocreate: boolean;
  readonly #idleTimeoutMs: number;
  readonly #maxSegmentBytes: number;
  readonly #log: Logger | undefined;
  readonly #channels = new Map<string, Channel>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(opts: TrickleServerOptions) {
    const trimmedBase = opts.basePath.replace(/^\/+|\/+$/g, '');
    this.#basePath = trimmedBase ? `/${trimmedBase}/` : '/';
    this.#autocreate = opts.autocreate ?? false;
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#maxSegmentBytes = opts.maxSegmentBytes ?? 64 * 1024 * 1024;
    this.#log = opts.logger;
    this.#sweeper = setInterval(
      () => this.#sweepIdleChannels(),
      opts.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS,
    );
    this.#sweeper.unref();
  }

  /** Creates the channel unless it exists already. */
  createChannel(name: string, mimeType: string): void {
    if (this.#channels.has(name)) return;
    this.#channels.set(name, new Channel(name, mimeType));
    this.#log?.debug({ channel: name, mimeType }, 'trickle channel created');
  }

  /** Closes and removes the channel, releasing everyone waiting on it. False if it did not exist. */
  closeChannel(name: string): boolean {
    const channel = this.#channels.get(name);
    if (!channel) return false;
    this.#channels.delete(name);
    channel.close();
    this.#log?.debug({ channel: name }, 'trickle channel closed');
    return true;
  }

  hasChannel(name: string): boolean {
    return this.#channels.has(name);
  }

  /** Handles the request if its path is under basePath; returns false otherwise (host routes it elsewhere). */
  handle(req: TrickleRequest, res: TrickleResponse): boolean {
    const path = (req.url ?? '').split('?', 1)[0];
    if (!path.startsWith(this.#basePath)) return false;
    const response: Response = res;
    const parts = path.slice(this.#basePath.length).split('/');
    let channelName: string;
    try {
      channelName = decodeURIComponent(parts[0]);
    } catch {
      reject(req, response, 400, 'Invalid channel name');
      return true;
    }
    if (channelName === '' || parts.length > 2 || (parts.length === 2 && parts[1] === '')) {
      reject(req, response, 404, 'Not found');
      return true;
    }
    const method = req.method ?? 'GET';
    if (parts.length === 1) {
      if (method === 'POST') this.#handleCreate(req, response, channelName);
      else if (method === 'DELETE') this.#handleDelete(req, response, channelName);
      else rejectMethod(req, response, 'POST, DELETE');
      return true;
    }
    const action = parts[1];
    if (method === 'GET' && action === 'next') {
      this.#handleNext(response, channelName);
      return true;
    }
    if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') {
      rejectMethod(req, response, 'GET, POST, DELETE');
      return true;
    }
    const existing = this.#channels.get(channelName);
    if (!existing && !(method === 'POST' && this.#autocreate)) {
      reject(req, response, 404, 'Stream not found');
      return true;
    }
    const seq = parseSeq(action);
    const lowestSeq = method === 'GET' ? SEQ_CURRENT : method === 'POST' ? SEQ_NEXT : 0;
    if (seq === undefined || seq < lowestSeq) {
      reject(req, response, 400, 'Invalid idx');
      return true;
    }
    const channel = existing ?? this.#autocreateChannel(channelName, req);
    if (method === 'GET') this.#handleGet(response, channel, seq);
    else if (method === 'POST') this.#handlePost(req, response, channel, seq);
    else if (channel.closeSegment(seq)) response.end();
    else reject(req, response, 400, 'Nonexistent segment');
    return true;
  }

  /** Closes every channel and stops the idle sweep. */
  close(): void {
    clearInterval(this.#sweeper);
    for (const name of [...this.#channels.keys()]) this.closeChannel(name);
  }

  #autocreateChannel(name: string, req: TrickleRequest): Channel {
    this.createChannel(name, headerValue(req.headers['content-type']) ?? '');
    return this.#channels.get(name)!;
  }

  #handleCreate(req: TrickleRequest, res: Response, name: string): void {
    if (!this.#channels.has(name)) {
      if (!this.#autocreate) {
        reject(req, res, 404, 'Stream not found');
        return;
      }
      this.createChannel(name, headerValue(req.headers['expect-content']) ?? '');
    }
    req.resume();
    res.end();
  }

  #handleDelete(req: TrickleRequest, res: Response, name: string): void {
    if (this.closeChannel(name)) res.end();
    else reject(req, res, 404, 'Stream not found');
  }

  #handleNext(res: Response, name: string): void {
    const channel = this.#channels.get(name);
    if (!channel) {
      res.statusCode = 404;
      res.end('Stream not found');
      return;
    }
    const next = String(channel.nextWrite);
    res.setHeader(LATEST_HEADER, next);
    if (channel.closed) res.setHeader(CLOSED_HEADER, CLOSED_VALUE);
    res.end(next);
  }

  #handlePost(req: TrickleRequest, res: Response, channel: Channel, requestedSeq: number): void {
    const segment = channel.segmentForWrite(requestedSeq);
    if (headerValue(req.headers[RESET_HEADER.toLowerCase()]) !== undefined) {
      // The publisher restarted: unblock subscribers of older segments, keep preconnected ones ahead.
      channel.closeSegmentsBefore(segment.seq);
    }
    let received = 0;
    let done = false;

    const finishEmpty = () => {
      // Advance anyway so a publisher's next segment does not look out of order.
      channel.markWritten(segment.seq);
      segment.close();
      res.setHeader(SEQ_HEADER, String(segment.seq));
      if (channel.closed) res.setHeader(CLOSED_HEADER, CLOSED_VALUE);
      // The body may never end (a preconnect); closing the connection releases the publisher.
      if (req.httpVersionMajor === 1) res.setHeader('Connection', 'close');
      res.end();
    };
    const stop = () => {
      done = true;
      unwatch();
    };
    // A preconnected POST with no data yet is released when its segment (or channel) closes.
    const unwatch = segment.watch(() => {
      if (done || received > 0 || !segment.closed) return;
      stop();
      finishEmpty();
      this.#log?.debug({ channel: channel.name, seq: segment.seq }, 'released pending trickle publisher');
    });

    req.on('data', (chunk: Buffer) => {
      if (done) return;
      if (received === 0) channel.markWritten(segment.seq);
      received += chunk.byteLength;
      if (received > this.#maxSegmentBytes) {
        // Keep what fits; subscribers get a closed, truncated segment rather than unbounded memory use.
        stop();
        segment.close();
        this.#log?.warn(
          { channel: channel.name, seq: segment.seq, limit: this.#maxSegmentBytes },
          'trickle segment too large',
        );
        res.statusCode = 413;
        res.setHeader(SEQ_HEADER, String(segment.seq));
        res.end(`segment larger than ${this.#maxSegmentBytes} bytes`);
        return;
      }
      segment.write(chunk);
    });
    req.on('end', () => {
      if (done) return;
      stop();
      if (received === 0) {
        finishEmpty();
        return;
      }
      segment.close();
      res.setHeader(SEQ_HEADER, String(segment.seq));
      res.end();
      this.#log?.debug(
        { channel: channel.name, seq: segment.seq, bytes: received },
        'trickle segment published',
      );
    });
    const onAbort = () => {
      if (done) return;
      stop();
      // Keep what arrived; an empty segment stays open so a retried POST can still fill it.
      if (received > 0) segment.close();
      this.#log?.debug(
        { channel: channel.name, seq: segment.seq, bytes: received },
        'trickle publisher went away',
      );
    };
    req.on('aborted', onAbort);
    req.on('close', onAbort);
    req.on('error', onAbort);
  }

  #handleGet(res: Response, channel: Channel, requestedSeq: number): void {
    const target = channel.segmentForRead(requestedSeq);
    const segment = target.segment;
    if (!segment) {
      res.setHeader(LATEST_HEADER, String(target.nextWrite));
      res.setHeader(SEQ_HEADER, String(target.seq));
      if (target.closed) res.setHeader(CLOSED_HEADER, CLOSED_VALUE);
      else res.statusCode = STATUS_SEGMENT_NOT_FOUND;
      res.end('Entry not found');
      return;
    }
    streamSegment(res, channel, segment, target.nextWrite);
  }

  #sweepIdleChannels(): void {
    const idleSince = Date.now() - this.#idleTimeoutMs;
    for (const channel of [...this.#channels.values()]) {
      if (channel.lastWriteAt < idleSince) {
        this.#log?.info({ channel: channel.name }, 'closing idle trickle channel');
        this.closeChannel(channel.name);
      }
    }
  }
}

/**
 * Sends everything the segment holds, then each new chunk as it arrives, until the segment closes.
 * Headers wait for the first byte, so a subscriber's pending request resolves exactly when data starts.
 */
function streamSegment(res: Response, channel: Channel, segment: Segment, nextWriteAtRequest: number): void {
  let sentChunks = 0;
  let waitingForDrain = false;
  let finished = false;

  const pump = () => {
    if (finished || waitingForDrain) return;
    while (sentChunks < segment.chunks.length) {
      if (!res.headersSent) {
        res.statusCode = 200;
        res.setHeader(SEQ_HEADER, String(segment.seq));
        if (segment.seq !== nextWriteAtRequest) res.setHeader(LATEST_HEADER, String(nextWriteAtRequest));
        res.setHeader('Content-Type', channel.mimeType);
      }
      if (!res.write(segment.chunks[sentChunks++])) {
        waitingForDrain = true;
        res.once('drain', () => {
          waitingForDrain = false;
          pump();
        });
        return;
      }
    }
    if (!segment.closed) return;
    finish();
    if (!res.headersSent) {
      // The segment ended empty, typically because the channel closed while we waited.
      res.setHeader(SEQ_HEADER, String(segment.seq));
      res.setHeader(LATEST_HEADER, String(channel.nextWrite));
      if (channel.closed) res.setHeader(CLOSED_HEADER, CLOSED_VALUE);
    }
    res.end();
  };
  const finish = () => {
    finished = true;
    unwatch();
  };
  const unwatch = segment.watch(pump);
  res.on('close', finish);
  pump();
}

/** Error response; on HTTP/1 it also closes the connection when a request body may still be coming. */
function reject(req: TrickleRequest, res: Response, status: number, message: string): void {
  res.statusCode = status;
  if (req.method === 'POST' && req.httpVersionMajor === 1) res.setHeader('Connection', 'close');
  res.end(message);
}

function rejectMethod(req: TrickleRequest, res: Response, allowed: string): void {
  res.setHeader('Allow', allowed);
  reject(req, res, 405, 'Method not allowed');
}
