// Carries out the policy's startJob command: picks the orchestrator (or the retry's target), starts
// the job there, and answers with the event that tells the policy how it went.
import type { Logger } from 'pino';
import type { SelectedOrchestrator } from '../orchestrators/select.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import type { TrickleSegment } from '../trickle/index.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import { type Failure, failureOf, LiveFailure } from './cause.ts';
import type { PaymentTally } from './live-payer.ts';
import type { OrchestratorEvent } from './orchestrator-events.ts';
import { OrchestratorSession } from './orchestrator-session.ts';
import type { LivePaymentBackend } from './payment-backend.ts';
import type { PolicyCommand, PolicyEvent } from './policy.ts';

export interface JobStartOptions {
  modelId: string;
  stream: string;
  /** go-livepeer's stream id (auth webhook or `streamId` query), sent with the job; default: the stream name. */
  streamId?: string;
  sessionId: string;
  identity: GatewayIdentity;
  payments?: LivePaymentBackend;
  logger: Logger;
  /** Picks an orchestrator that can run the model, skipping `exclude`; rejects with the reasons when none can. */
  selectOrchestrator: (
    modelId: string,
    exclude: ReadonlySet<string>,
    opts?: { includeSuspended?: boolean },
  ) => Promise<SelectedOrchestrator>;
  refreshOrchestrator?: (url: string, modelId: string) => Promise<OrchestratorInfo>;
  refusePrice?: (info: OrchestratorInfo, modelId: string) => string | undefined;
  /** What this stream paid each orchestrator (created on first use). */
  tally: (url: string) => PaymentTally;
}

/** Where a running job reports. */
export interface JobHandlers {
  onOutputSegment: (segment: TrickleSegment) => Promise<void>;
  onEvent: (event: OrchestratorEvent) => void;
  onFailure: (failure: Failure) => void;
  onPaymentFailure: (failure: Failure) => void;
  onInputSegmentSent?: (seq: number) => void;
}

/**
 * Starts the job `c` asks for, with the stream's current params. Never rejects: the outcome is
 * the policy's next event (and the session, when the job runs). `stillWanted` is asked once the
 * orchestrator is chosen: a stream that ended meanwhile starts nothing.
 */
export async function startJob(
  c: Extract<PolicyCommand, { type: 'startJob' }>,
  params: Record<string, unknown>,
  opts: JobStartOptions,
  handlers: JobHandlers,
  stillWanted: () => boolean,
): Promise<{ event: PolicyEvent; session?: OrchestratorSession } | undefined> {
  const { jobId } = c;
  let selected: SelectedOrchestrator;
  try {
    selected = c.target ? await selectTarget(c.target, opts) : await select(new Set(c.exclude), opts);
  } catch (err) {
    if (c.target) {
      const failure = failureOf(err, 'job-start', {
        orchestrator: c.target,
        fallback: 'orchestrator',
        prefix: 'job start failed',
      });
      return { event: { type: 'jobStartFailed', jobId, url: c.target, failure } };
    }
    const message = err instanceof Error ? err.message : String(err);
    return {
      event: {
        type: 'noOrchestrator',
        jobId,
        failure: { blame: 'orchestrator', code: 'no-orchestrator', message },
      },
    };
  }
  if (!stillWanted()) return undefined;
  const { refreshOrchestrator: refresh, refusePrice, modelId } = opts;
  try {
    const session = await OrchestratorSession.start({
      orchestrator: selected,
      identity: opts.identity,
      payments: opts.payments,
      prepay: !c.prepaid.includes(selected.url),
      tally: opts.tally,
      refreshInfo: refresh && ((url) => refresh(url, modelId)),
      refusePrice: refusePrice && ((info) => refusePrice(info, modelId)),
      modelId,
      params,
      streamName: opts.stream,
      streamId: opts.streamId,
      requestId: `${opts.stream}-${opts.sessionId.slice(0, 8)}-${jobId}`,
      logger: opts.logger,
      ...handlers,
    });
    return { event: { type: 'jobStarted', jobId, url: selected.url }, session };
  } catch (err) {
    const failure = failureOf(err, 'job-start', {
      orchestrator: selected.url,
      fallback: 'orchestrator',
      prefix: 'job start failed',
    });
    opts.logger.warn({ orchestrator: selected.url, blame: failure.blame }, failure.message);
    return { event: { type: 'jobStartFailed', jobId, url: selected.url, failure } };
  }
}

function select(exclude: ReadonlySet<string>, opts: JobStartOptions): Promise<SelectedOrchestrator> {
  // A suspension is a preference: with nothing else left, a suspended orchestrator (one that was
  // only slow, say) is better than none.
  return opts
    .selectOrchestrator(opts.modelId, exclude)
    .catch(() => opts.selectOrchestrator(opts.modelId, exclude, { includeSuspended: true }));
}

/** The orchestrator of a retry, asked again for the job's auth token and price. */
async function selectTarget(url: string, opts: JobStartOptions): Promise<SelectedOrchestrator> {
  const { refreshOrchestrator: refresh, refusePrice } = opts;
  if (!refresh) return select(new Set(), opts);
  const info = await refresh(url, opts.modelId);
  const refused = refusePrice?.(info, opts.modelId);
  if (refused)
    throw new LiveFailure({ blame: 'orchestrator', code: 'price', message: refused, orchestrator: url });
  return { url, info };
}
