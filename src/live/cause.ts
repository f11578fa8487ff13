// Typed causes of a live stream's trouble: who is to blame and what happened, so that decisions
// (suspend an orchestrator, swap it, stay, end the stream) read a type, never message text.
import { BatchError } from '../batch/errors.ts';
import { type Blame, OrchestratorError } from '../orchestrators/errors.ts';
import { ChainError } from '../payments/chain.ts';
import { TicketParamsError } from '../payments/sender.ts';
import { RemoteSignerError } from '../signer/client.ts';
import { TrickleError } from '../trickle/index.ts';

export type { Blame };

export type FailureCode =
  /** The job start request failed (refused, unreachable, our payment checks). */
  | 'job-start'
  /** Selection found no orchestrator to start a job on. */
  | 'no-orchestrator'
  /** An input segment could not be sent. */
  | 'input'
  /** The orchestrator ended or deleted the output channel. */
  | 'output-closed'
  /** Reading output failed mid-way (cut off, unreadable). */
  | 'output'
  /** Params could not be sent on the control channel. */
  | 'control'
  /** A job produced no output within the first-output timeout. */
  | 'first-output-timeout'
  /** A job that had produced output stopped while input flowed. */
  | 'stall'
  /** The orchestrator reports its pipeline in state ERROR. */
  | 'pipeline-error'
  /** An error event from the orchestrator: information, not a decision. */
  | 'reported-error'
  /** An error event right after the client changed params: the client's params, most likely. */
  | 'params-rejected'
  /** A live payment did not go through. */
  | 'payment'
  /** The orchestrator's price is above the ceiling, or more than doubled. */
  | 'price'
  /** The publisher went away or sent nothing. */
  | 'publisher';

export interface Failure {
  blame: Blame;
  code: FailureCode;
  /** One line. The orchestrator's URL is a field, not part of it. */
  message: string;
  orchestrator?: string;
  /** Structured facts (HTTP status, error kind, timings). */
  details?: Record<string, unknown>;
}

/** A throwable Failure; `cause` keeps the error it came from, as viem's BaseError does. */
export class LiveFailure extends Error implements Failure {
  readonly blame: Blame;
  readonly code: FailureCode;
  readonly orchestrator?: string;
  readonly details?: Record<string, unknown>;

  constructor(failure: Failure, options?: { cause?: unknown }) {
    super(failure.message, options);
    this.name = 'LiveFailure';
    this.blame = failure.blame;
    this.code = failure.code;
    this.orchestrator = failure.orchestrator;
    this.details = failure.details;
  }

  toFailure(): Failure {
    return {
      blame: this.blame,
      code: this.code,
      message: this.message,
      ...(this.orchestrator ? { orchestrator: this.orchestrator } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Ticket checks that fail on the gateway's own account (deposit, reserve, unlock), not the params. */
const GATEWAY_TICKET_CODES = new Set<string>(['no-deposit', 'no-reserve', 'unlock-soon']);

/**
 * Who is to blame for `err`, read from its type. `fallback` is for errors without one (a stream
 * error while reading a body, say): the caller knows where it happened.
 */
export function blameOf(err: unknown, fallback: Blame): Blame {
  if (err instanceof LiveFailure) return err.blame;
  // A refusal of what the client sent (the input guard's InputError, a batch 4xx): never an
  // orchestrator's, whichever path it came from.
  if ((err as { blame?: unknown } | null)?.blame === 'client') return 'client';
  if (err instanceof BatchError) return err.status >= 400 && err.status < 500 ? 'client' : fallback;
  if (err instanceof OrchestratorError) return err.blame;
  if (err instanceof TrickleError) return err.kind === 'network' ? 'network' : 'orchestrator';
  if (err instanceof ChainError) return 'gateway';
  // Our own signer's trouble, but for a price it refuses (the orchestrator's).
  if (err instanceof RemoteSignerError) return err.blame;
  if (err instanceof TicketParamsError)
    return GATEWAY_TICKET_CODES.has(err.code) ? 'gateway' : 'orchestrator';
  return fallback;
}

/** The Failure `err` stands for; `code` says what was being done, `fallback` who to blame if untyped. */
export function failureOf(
  err: unknown,
  code: FailureCode,
  opts: { orchestrator?: string; fallback: Blame; prefix?: string },
): Failure {
  if (err instanceof LiveFailure) return err.toFailure();
  const text = oneLine(err instanceof Error ? err.message : String(err));
  const details: Record<string, unknown> = {};
  if (err instanceof OrchestratorError) {
    details.kind = err.kind;
    if (err.status !== undefined) details.status = err.status;
  } else if (err instanceof TrickleError) {
    details.kind = err.kind;
    if (err.status !== undefined) details.status = err.status;
  } else if (err instanceof TicketParamsError || err instanceof ChainError) {
    details.code = err.code;
  } else if (err instanceof RemoteSignerError) {
    details.kind = err.kind;
    if (err.status !== undefined) details.status = err.status;
  }
  return {
    blame: blameOf(err, opts.fallback),
    code,
    message: opts.prefix ? `${opts.prefix}: ${text}` : text,
    ...(opts.orchestrator ? { orchestrator: opts.orchestrator } : {}),
    ...(Object.keys(details).length ? { details } : {}),
  };
}

/** Only these count against an orchestrator: suspension and swaps. */
export function countsAgainstOrchestrator(f: Failure): boolean {
  return f.blame === 'orchestrator' || f.blame === 'network';
}

export function oneLine(s: string, max = 300): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, max);
}

/** Longest string kept whole in an error body; longer ones are cut and their length named. */
const MAX_ECHO_CHARS = 200;
/** Longest error message a client is sent. */
const MAX_MESSAGE_CHARS = 1000;

/** `s` as it may appear in an error body: at most `max` characters, its length named when cut. */
export function echo(s: string, max = MAX_ECHO_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}

/**
 * An error message fit for a client: heap pointers (`[h264 @ 0x55d5…]`), absolute file paths,
 * stack frames and long runs without spaces (a client's own 900 KB model id) are cut out.
 */
export function cleanMessage(message: string): string {
  let s = message
    // Stack frames: "    at fn (/path/file.js:1:2)"
    .replace(/\s+at\s+(?:[^\s()]+\s+)?\(?(?:file:\/\/|node:|\/)[^\s)]*\)?/g, '')
    // "[h264 @ 0x55d5c0a8e2c0] " as ffmpeg prefixes its lines, and any other pointer.
    .replace(/\[[^\]\s]{1,40} @ 0x[0-9a-f]+\]\s*/gi, '')
    // (at most 16 hex digits: a 40-digit account address or a 64-digit hash is kept)
    .replace(/\b0x[0-9a-f]{6,16}\b/gi, '0x…')
    // Absolute paths of files on the gateway's disk (temp files, sources).
    .replace(
      /(^|[\s'"(=:])(?:\/(?:tmp|var|home|usr|opt|root|work|proc|srv|etc|run|mnt|app)\b)[^\s'",;)]*/g,
      '$1…',
    )
    .replace(/\s+/g, ' ')
    .trim();
  // Any long run without spaces is a client's value echoed back, or a blob.
  s = s.replace(/\S{201,}/g, (run) => echo(run, 60));
  return echo(s, MAX_MESSAGE_CHARS);
}
