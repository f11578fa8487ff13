import type { Agent, ClientRequest, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  CLOSED_HEADER,
  createAgent,
  headerValue,
  LATEST_HEADER,
  normalizeChannelUrl,
  parseSeq,
  requestModule,
  SEQ_HEADER,
  SEQ_NEXT,
  STATUS_SEGMENT_NOT_FOUND,
  segmentUrl,
  TrickleError,
} from './protocol.ts';

export interface TrickleSubscriberOptions {
  /** First sequence number to read. Default -1: the live edge (the next segment to be written). */
  start?: number;
  /** Set to false to accept self-signed certificates on https:// channels. Default true. */
  rejectUnauthorized?: boolean;
  logger?: Logger;
  /** Pause before retrying after a missing segment or a network error. Default 250 ms. */
  retryDelayMs?: number;
}

export interface TrickleSegment {
  readonly seq: number;
  /** The segment's bytes as they arrive; ends when the publisher finishes the segment. */
  readonly body: Readable;
}

const MAX_CONSECUTIVE_FAILURES = 3;

type GetOutcome = { response: IncomingMessage } | { error: Error };

/** One GET request for a segment; its outcome never rejects so a preconnect can fail unobserved. */
class SegmentGet {
  readonly request: ClientRequest;
  readonly outcome: Promise<GetOutcome>;

  constructor(url: URL, agent: Agent) {
    this.request = requestModule(url).get(url, { agent });
    this.outcome = new Promise((resolve) => {
      this.request.on('response', (response) => resolve({ response }));
      this.request.on('error', (error) => resolve({ error }));
    });
  }
}

/**
 * Reads one trickle channel segment by segment: `GET {channelUrl}/{seq}`.
 * As soon as a segment's headers arrive, the GET for the next one is opened, so the server can
 * answer it the moment the publisher starts that segment.
 */
export class TrickleSubscriber {
  readonly #url: URL;
  readonly #agent: Agent;
  readonly #log: Logger | undefined;
  readonly #retryDelayMs: number;
  #seq: number;
  #pending: { seq: number; get: SegmentGet } | undefined;
  /** next() calls run one after another; each one moves the sequence on. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #channelEnded = false;
  /** The request next() is waiting on, so close() can end it. */
  #awaited: SegmentGet | undefined;
  #cancelDelay: (() => void) | undefined;

  constructor(channelUrl: string, opts: TrickleSubscriberOptions = {}) {
    this.#url = normalizeChannelUrl(channelUrl);
    this.#agent = createAgent(this.#url, opts.rejectUnauthorized ?? true);
    this.#log = opts.logger;
    this.#retryDelayMs = opts.retryDelayMs ?? 250;
    this.#seq = opts.start ?? SEQ_NEXT;
  }

  /** Resolves when the next segment's response headers arrive; null when the channel is closed/deleted. */
  next(): Promise<TrickleSegment | null> {
    const result = this.#queue.then(() => this.#read());
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Ends pending requests and every connection, including bodies still being read. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending?.get.request.destroy();
    this.#pending = undefined;
    this.#awaited?.request.destroy();
    this.#cancelDelay?.();
    this.#agent.destroy();
  }

  async #read(): Promise<TrickleSegment | null> {
    let failures = 0;
    const fail = async (error: TrickleError): Promise<void> => {
      failures++;
      if (failures >= MAX_CONSECUTIVE_FAILURES) throw error;
      this.#log?.debug(
        { url: this.#url.href, seq: this.#seq, err: error.message },
        'trickle GET failed, retrying',
      );
      await this.#delay(this.#retryDelayMs);
    };

    for (;;) {
      if (this.#closed || this.#channelEnded) return null;
      const requestedSeq = this.#seq;
      const get = this.#pending?.seq === requestedSeq ? this.#pending.get : this.#open(requestedSeq);
      this.#pending = undefined;
      this.#awaited = get;
      const outcome = await get.outcome;
      this.#awaited = undefined;
      if (this.#closed) {
        get.request.destroy();
        return null;
      }
      if ('error' in outcome) {
        const message = `segment ${requestedSeq}: ${outcome.error.message}`;
        const error = new TrickleError('network', message, undefined, { cause: outcome.error });
        // Nobody listens there any more: retrying only delays whoever has to react.
        if ((outcome.error as NodeJS.ErrnoException).code === 'ECONNREFUSED') throw error;
        await fail(error);
        continue;
      }

      const res = outcome.response;
      const status = res.statusCode ?? 0;
      if (status === 404) {
        res.resume();
        throw new TrickleError('not-found', `channel ${this.#url.href} not found`, status);
      }
      if (res.headers[CLOSED_HEADER.toLowerCase()] !== undefined) {
        res.resume();
        this.#channelEnded = true;
        return null;
      }
      if (status === STATUS_SEGMENT_NOT_FOUND) {
        res.resume();
        // We fell behind (or ran ahead): re-sync at the live edge.
        const latest = parseSeq(headerValue(res.headers[LATEST_HEADER.toLowerCase()]));
        await fail(
          new TrickleError('http', `segment ${requestedSeq} not available (latest ${latest})`, status),
        );
        this.#seq = latest ?? SEQ_NEXT;
        continue;
      }
      if (status !== 200) {
        res.resume();
        await fail(new TrickleError('http', `segment ${requestedSeq}: HTTP ${status}`, status));
        continue;
      }

      const seq = parseSeq(headerValue(res.headers[SEQ_HEADER.toLowerCase()])) ?? requestedSeq;
      this.#seq = seq >= 0 ? seq + 1 : SEQ_NEXT;
      this.#pending = { seq: this.#seq, get: this.#open(this.#seq) };
      return { seq, body: res };
    }
  }

  #open(seq: number): SegmentGet {
    return new SegmentGet(segmentUrl(this.#url, seq), this.#agent);
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#cancelDelay = undefined;
        resolve();
      }, ms);
      this.#cancelDelay = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
