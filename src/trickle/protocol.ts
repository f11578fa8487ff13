import http from 'node:http';
import https from 'node:https';

/** Header names of the trickle protocol (Node lower-cases incoming header names). */
export const SEQ_HEADER = 'Lp-Trickle-Seq';
export const LATEST_HEADER = 'Lp-Trickle-Latest';
export const CLOSED_HEADER = 'Lp-Trickle-Closed';
export const RESET_HEADER = 'Lp-Trickle-Reset';

/** Status the server uses for "the channel exists but that segment does not". */
export const STATUS_SEGMENT_NOT_FOUND = 470;

/** Sequence aliases accepted in URLs: the next segment to be written, and the one being written. */
export const SEQ_NEXT = -1;
export const SEQ_CURRENT = -2;

export type TrickleErrorKind =
  | 'not-found' // the channel does not exist (any more)
  | 'closed' // the channel was closed while we used it
  | 'http' // an unexpected status
  | 'network'; // connection refused, reset, TLS failure, ...

export class TrickleError extends Error {
  constructor(
    readonly kind: TrickleErrorKind,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TrickleError';
  }
}

/** Parses a decimal integer the way the server and clients expect sequence numbers; undefined if it is not one. */
export function parseSeq(text: string | undefined): number | undefined {
  if (text === undefined || !/^-?\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The channel URL without trailing slashes, so `${base}/${seq}` is well formed. */
export function normalizeChannelUrl(channelUrl: string): URL {
  const url = new URL(channelUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`trickle channel URL must be http(s): ${channelUrl}`);
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

export function segmentUrl(channelUrl: URL, seq: number | string): URL {
  const url = new URL(channelUrl);
  url.pathname = `${url.pathname}/${seq}`;
  return url;
}

/** One keep-alive agent per client; idle sockets are unref'ed by Node so they never hold the process open. */
export function createAgent(channelUrl: URL, rejectUnauthorized: boolean): http.Agent {
  return channelUrl.protocol === 'https:'
    ? new https.Agent({ keepAlive: true, rejectUnauthorized })
    : new http.Agent({ keepAlive: true });
}

export function requestModule(channelUrl: URL): typeof http | typeof https {
  return channelUrl.protocol === 'https:' ? https : http;
}
