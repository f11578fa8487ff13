/** A refusal with the HTTP status WHIP/WHEP clients expect (RFC 9725 names most of them). */
export class LiveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LiveError';
  }
}
