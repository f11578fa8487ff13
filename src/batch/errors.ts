/** A batch request that ends in an HTTP error: status, a stable code, a one-line message. */
export class BatchError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra fields for the JSON error body (e.g. the reasons per orchestrator). */
    readonly details?: Record<string, unknown>,
    /** Who was tried, for the Livepeer-Orchestrator / Livepeer-Tries headers. */
    readonly attempts?: { orchestrator?: string; tries: number },
  ) {
    super(message);
    this.name = 'BatchError';
  }
}
