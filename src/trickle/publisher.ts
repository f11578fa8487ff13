import type { Agent, ClientRequest, IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import {
  CLOSED_HEADER,
  createAgent,
  normalizeChannelUrl,
  requestModule,
  segmentUrl,
  TrickleError,
} from './protocol.ts';

export interface TricklePublisherOptions {
  /** Content-Type of the segments. Default `video/MP2T`. */
  mimeType?: string;
  /** Set to false to accept self-signed certificates on https:// channels. Default true. */
  rejectUnauthorized?: boolean;
  logger?: Logger;
  /**
   * Called as soon as a segment fails in a way a retry cannot fix (the connection died with data
   * sent, or the server refused it), before the writer's end() would report it.
   */
  onSegmentFailed?: (seq: number, error: TrickleError) => void;
}

/** One segment being written. Errors surface from `end()`. */
export interface SegmentWriter {
  readonly seq: number;
  /** Sends a chunk now; false means the connection is backed up (wait for `waitForDrain()`), like stream.write. */
  write(chunk: Uint8Array): boolean;
  /** Resolves when writing can continue after `write()` returned false (or the segment failed). */
  waitForDrain(): Promise<void>;
  /** Finishes the segment; resolves once the server has it, rejects with a TrickleError otherwise. */
  end(): Promise<void>;
  /** Drops the segment; subscribers get what was sent so far, then the segment's end. */
  abort(): void;
}

const DELETE_TIMEOUT_MS = 5000;

type PostOutcome = { ok: true } | { ok: false; error: TrickleError; retryable: boolean };

/** One POST request carrying one segment's body. */
class SegmentPost {
  readonly request: ClientRequest;
  readonly outcome: Promise<PostOutcome>;
  /** Set as soon as the request has failed or the server has answered; writes are pointless after that. */
  settled: PostOutcome | undefined;
  /** The server answered (its body may still be arriving); the request body is of no further use. */
  answered = false;
  bytesWritten = 0;
  abortedByUs = false;

  constructor(
    readonly seq: number,
    url: URL,
    agent: Agent,
    mimeType: string,
  ) {
    this.request = requestModule(url).request(url, {
      method: 'POST',
      agent,
      headers: { 'Content-Type': mimeType, 'Transfer-Encoding': 'chunked' },
    });
    this.outcome = new Promise<PostOutcome>((resolve) => {
      const settle = (outcome: PostOutcome) => {
        if (this.settled) return;
        this.settled = outcome;
        resolve(outcome);
      };
      this.request.on('error', (err) => {
        // Once answered, a write error (EPIPE) is a side effect of that answer, which decides the outcome.
        if (this.answered) return;
        const retryable = this.bytesWritten === 0 && !this.abortedByUs;
        const message = this.abortedByUs ? 'segment aborted' : `segment ${seq}: ${err.message}`;
        settle({
          ok: false,
          error: new TrickleError('network', message, undefined, { cause: err }),
          retryable,
        });
      });
      this.request.on('response', (res) => {
        this.answered = true;
        // A response before our body ended means the server is done with this segment: stop sending.
        const requestUnfinished = !this.request.writableFinished;
        readText(res).then(
          (body) => {
            settle(outcomeOf(seq, res, body));
            if (requestUnfinished) this.request.destroy();
          },
          (err: Error) =>
            settle({
              ok: false,
              error: new TrickleError('network', err.message, undefined, { cause: err }),
              retryable: false,
            }),
        );
      });
    });
    // Sends the headers now so the server is ready before the first byte exists.
    this.request.flushHeaders();
  }

  write(chunk: Uint8Array): boolean {
    if (this.settled || this.answered) return true;
    this.bytesWritten += chunk.byteLength;
    return this.request.write(chunk);
  }

  end(): void {
    if (!this.settled && !this.answered && !this.request.writableEnded) this.request.end();
  }

  destroy(): void {
    this.abortedByUs = true;
    this.request.destroy();
  }
}

function outcomeOf(seq: number, res: IncomingMessage, body: string): PostOutcome {
  const status = res.statusCode ?? 0;
  if (res.headers[CLOSED_HEADER.toLowerCase()] !== undefined) {
    return {
      ok: false,
      error: new TrickleError('closed', `segment ${seq}: channel closed`, status),
      retryable: false,
    };
  }
  if (status === 200) return { ok: true };
  const kind = status === 404 ? 'not-found' : 'http';
  const error = new TrickleError(kind, `segment ${seq}: HTTP ${status} ${body.trim()}`.trim(), status);
  return { ok: false, error, retryable: false };
}

async function readText(res: IncomingMessage): Promise<string> {
  let text = '';
  res.setEncoding('utf8');
  for await (const chunk of res) text += chunk;
  return text;
}

/**
 * Publishes segments to one trickle channel: `POST {channelUrl}/{seq}` per segment, seq 0, 1, 2, ...
 * While a segment is being written, the POST for the next one is already open (preconnected),
 * so the next segment's first byte goes out without a new request's round trip.
 */
export class TricklePublisher {
  readonly #url: URL;
  readonly #agent: Agent;
  readonly #mimeType: string;
  readonly #log: Logger | undefined;
  readonly #onSegmentFailed: ((seq: number, error: TrickleError) => void) | undefined;
  #nextSeq = 0;
  #preconnected: SegmentPost | undefined;
  /** Requests not yet answered, so close() can end them. */
  readonly #inFlight = new Set<SegmentPost>();
  #closed = false;

  constructor(channelUrl: string, opts: TricklePublisherOptions = {}) {
    this.#url = normalizeChannelUrl(channelUrl);
    this.#agent = createAgent(this.#url, opts.rejectUnauthorized ?? true);
    this.#mimeType = opts.mimeType ?? 'video/MP2T';
    this.#log = opts.logger;
    this.#onSegmentFailed = opts.onSegmentFailed;
  }

  /** Starts the next segment (seq 0, 1, 2, ...), reusing the preconnected request for it if there is one, and preconnects seq+1. */
  startSegment(): SegmentWriter {
    if (this.#closed) throw new TrickleError('closed', 'publisher is closed');
    const seq = this.#nextSeq++;
    const preconnected = this.#preconnected;
    const post = preconnected?.seq === seq ? preconnected : this.#open(seq);
    this.#preconnected = this.#open(seq + 1);
    return new Writer(seq, post, this.#retry, this.#dropSegment);
  }

  /** Convenience for small messages (JSON control/events): one whole segment. */
  async writeSegment(data: Uint8Array | string): Promise<void> {
    const writer = this.startSegment();
    writer.write(typeof data === 'string' ? Buffer.from(data) : data);
    await writer.end();
  }

  /**
   * Aborts the preconnect and any segment still in flight. With `deleteChannel`, also deletes the channel
   * (a 404 counts as done). Never rejects: failures are logged.
   */
  async close(opts: { deleteChannel?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#preconnected = undefined;
    for (const post of this.#inFlight) post.destroy();
    this.#inFlight.clear();
    if (opts.deleteChannel) {
      try {
        const status = await this.#delete(this.#url);
        if (status !== 200 && status !== 404)
          this.#log?.warn({ url: this.#url.href, status }, 'trickle delete failed');
      } catch (err) {
        this.#log?.warn({ url: this.#url.href, err }, 'trickle delete failed');
      }
    }
    this.#agent.destroy();
  }

  #open(seq: number): SegmentPost {
    const post = new SegmentPost(seq, segmentUrl(this.#url, seq), this.#agent, this.#mimeType);
    this.#inFlight.add(post);
    void post.outcome.then((outcome) => {
      this.#inFlight.delete(post);
      if (outcome.ok) return;
      this.#log?.debug({ seq, err: outcome.error.message }, 'trickle segment POST failed');
      // A failure a retry cannot fix, told at once rather than when the segment ends.
      if (!post.abortedByUs && (!outcome.retryable || post.bytesWritten > 0))
        this.#onSegmentFailed?.(seq, outcome.error);
    });
    return post;
  }

  readonly #retry = (seq: number): SegmentPost | undefined => {
    if (this.#closed) return undefined;
    this.#log?.debug({ url: this.#url.href, seq }, 'retrying trickle segment');
    return this.#open(seq);
  };

  // Closes a segment that got no data so subscribers waiting for it move on.
  readonly #dropSegment = (seq: number): void => {
    if (this.#closed) return;
    this.#delete(segmentUrl(this.#url, seq)).catch(() => {});
  };

  #delete(url: URL): Promise<number> {
    return new Promise((resolve, reject) => {
      const request = requestModule(url).request(url, { method: 'DELETE', agent: this.#agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      request.on('error', reject);
      // A DELETE is tiny; a server that does not answer it quickly is not going to.
      request.setTimeout(DELETE_TIMEOUT_MS, () => request.destroy(new Error('DELETE timed out')));
      request.end();
    });
  }
}

class Writer implements SegmentWriter {
  #post: SegmentPost;
  #retried = false;
  #ended = false;

  constructor(
    readonly seq: number,
    post: SegmentPost,
    private readonly retry: (seq: number) => SegmentPost | undefined,
    private readonly drop: (seq: number) => void,
  ) {
    this.#post = post;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#ended) throw new Error(`trickle segment ${this.seq}: write after end`);
    this.#retryIfFailedEarly();
    return this.#post.write(chunk);
  }

  waitForDrain(): Promise<void> {
    const request = this.#post.request;
    if (this.#post.settled || !request.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        request.off('drain', done);
        request.off('close', done);
        resolve();
      };
      request.on('drain', done);
      request.on('close', done);
    });
  }

  async end(): Promise<void> {
    if (!this.#ended) {
      this.#ended = true;
      this.#retryIfFailedEarly();
      this.#post.end();
    }
    let outcome = await this.#post.outcome;
    if (!outcome.ok && outcome.retryable && this.#retryIfFailedEarly()) {
      this.#post.end();
      outcome = await this.#post.outcome;
    }
    if (!outcome.ok) throw outcome.error;
  }

  abort(): void {
    if (this.#ended && this.#post.settled) return;
    this.#ended = true;
    const post = this.#post;
    post.destroy();
    // With bytes sent, the server closes the segment itself when the request dies.
    if (post.bytesWritten === 0) this.drop(this.seq);
  }

  /** A request that failed before carrying any byte is replaced once (e.g. a stale keep-alive socket). */
  #retryIfFailedEarly(): boolean {
    const settled = this.#post.settled;
    if (this.#retried || !settled || settled.ok || !settled.retryable) return false;
    const replacement = this.retry(this.seq);
    if (!replacement) return false;
    this.#retried = true;
    this.#post = replacement;
    return true;
  }
}
