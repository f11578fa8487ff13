export type OrchestratorErrorKind =
  | 'unreachable' // connection refused, DNS, reset
  | 'timeout'
  | 'tls' // handshake failed
  | 'refused' // the orchestrator answered with an error
  | 'invalid-reply'; // the answer does not make sense

/** Every failure talking to an orchestrator becomes one of these, with the orchestrator's URL. */
export class OrchestratorError extends Error {
  constructor(
    readonly kind: OrchestratorErrorKind,
    readonly orchestrator: string,
    message: string,
    readonly status?: number,
  ) {
    super(`${orchestrator}: ${message}`);
    this.name = 'OrchestratorError';
  }
}
