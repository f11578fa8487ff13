export type OrchestratorErrorKind =
  | 'unreachable' // connection refused, DNS, reset
  | 'timeout'
  | 'tls' // handshake failed
  | 'refused' // the orchestrator answered with an error
  | 'invalid-reply'; // the answer does not make sense

/**
 * Who a failure is the fault of. Decisions read this, never the message: only an orchestrator's
 * (or the network path to it) counts against an orchestrator; the gateway's own trouble (its
 * payment account, its CPU) and a client's bad input never do.
 */
export type Blame = 'gateway' | 'client' | 'orchestrator' | 'network';

/**
 * Every failure talking to an orchestrator becomes one of these. The URL is a field, not part of
 * the message: callers put it where they want it (a reason list already says `url: why`).
 */
export class OrchestratorError extends Error {
  constructor(
    readonly kind: OrchestratorErrorKind,
    readonly orchestrator: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'OrchestratorError';
  }

  /** A transport failure may be the path, not the orchestrator; an answer is the orchestrator's own. */
  get blame(): Blame {
    return this.kind === 'refused' || this.kind === 'invalid-reply' ? 'orchestrator' : 'network';
  }
}
