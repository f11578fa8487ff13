/** A refusal with the HTTP status WHIP/WHEP clients expect (RFC 9725 names most of them). */
export class LiveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, sent as Retry-After (a 503 the client may try again after). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'LiveError';
  }
}
