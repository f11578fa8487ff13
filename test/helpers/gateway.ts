// A whole gateway on 127.0.0.1 for tests: orchestrator pool, stream registry and HTTP app,
// with loopback-only WebRTC and the limits a test wants.
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { buildGatewayApp, type GatewayAppOptions } from '../../src/http/app.ts';
import type { BatchRoutesOptions } from '../../src/http/batch-routes.ts';
import type { LiveRoutesOptions } from '../../src/http/live-routes.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { LivePayments, type LivePaymentsOptions } from '../../src/live/live-payer.ts';
import { LiveStreams, type LiveStreamsOptions } from '../../src/live/registry.ts';
import { type DiscoverySource, StaticSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { accountIdentity, type GatewayIdentity, offchainIdentity } from '../../src/payments/identity.ts';
import { LOOPBACK_NETWORK, type PeerNetworkOptions } from '../../src/webrtc/index.ts';

export interface TestGatewayOptions {
  orchestrators: string[];
  /** Discovery sources used instead of the static `orchestrators` list (on-chain tests). */
  sources?: DiscoverySource[];
  logger: Logger;
  limits?: Partial<LiveStreamsOptions['limits']>;
  priceCeiling?: PriceCeiling;
  /** Selection's randomness; () => 0 tries orchestrators in the order given. */
  random?: () => number;
  defaultModel?: string;
  grpcTimeoutMs?: number;
  /** Pay orchestrators that charge from this account (or these ticket senders). */
  payments?: LivePaymentsOptions | LivePayments;
  /** Who the gateway is to orchestrators; default: the payments account's, else off-chain. */
  identity?: GatewayIdentity;
  /** The batch AI routes, built on the gateway's pool. */
  batch?: (pool: OrchestratorPool) => BatchRoutesOptions;
  /** The segment transcoding routes. */
  transcode?: GatewayAppOptions['transcode'];
  /** Where WebRTC peers listen; default LOOPBACK_NETWORK (e.g. add shared `ports`). */
  network?: PeerNetworkOptions;
  /** The gateway's event-loop delay as live streams see it (default: this process's). */
  loopDelay?: LiveStreamsOptions['loopDelay'];
  /** Base of absolute URLs the live routes hand out (Livepeer-Playback-URL). */
  publicUrl?: string;
  /** Operator options of the live routes: tokens, the auth webhook, gatewayHost. */
  live?: Partial<Omit<LiveRoutesOptions, 'streams' | 'iceServers'>>;
  /** Where the stream events go (default: a new emitter of the registry's). */
  events?: LiveStreamsOptions['events'];
  /** Drain state and SSE clients (src/http/operator-routes.ts). */
  operator?: GatewayAppOptions['operator'];
  /** Request bodies in flight at once (-httpBodyBudgetBytes); default none. */
  bodyBudget?: GatewayAppOptions['bodyBudget'];
  /** What this node shares with others (src/cluster/); default: in-process. */
  cluster?: LiveStreamsOptions['cluster'];
}

export async function startTestGateway(opts: TestGatewayOptions) {
  const { logger } = opts;
  const payments = opts.payments;
  const identity =
    opts.identity ??
    (payments instanceof LivePayments
      ? payments.identity
      : payments
        ? accountIdentity(payments.account)
        : offchainIdentity);
  const pool = new OrchestratorPool({
    sources: opts.sources ?? [new StaticSource(opts.orchestrators)],
    identity,
    grpcTimeoutMs: opts.grpcTimeoutMs ?? 3000,
    infoMaxAgeMs: 10_000,
    concurrency: 4,
    priceCeiling: opts.priceCeiling ?? PriceCeiling.none(),
    random: opts.random,
    logger,
  });
  let streams: LiveStreams | undefined;
  const metrics = createMetrics({ streams: () => streams as LiveStreams, pool });
  streams = new LiveStreams({
    pool,
    identity,
    payments: opts.payments,
    limits: {
      minSegmentDurationMs: 1000,
      pliIntervalMs: 2000,
      maxViewers: 4,
      ingestTimeoutMs: 5000,
      maxStreams: 8,
      ...opts.limits,
    },
    network: opts.network ?? LOOPBACK_NETWORK,
    metrics: metrics.live,
    loopDelay: opts.loopDelay,
    events: opts.events,
    cluster: opts.cluster,
    nodeUrl: opts.live?.clusterNodeUrl,
    logger,
  });
  const app = await buildGatewayApp({
    pool,
    streams,
    live: {
      iceServers: [],
      defaultModel: opts.defaultModel ?? 'invert',
      publicUrl: opts.publicUrl,
      ...opts.live,
    },
    operator: opts.operator,
    bodyLimitBytes: 1024 * 1024,
    bodyBudget: opts.bodyBudget,
    metrics: metrics.registry,
    batch: opts.batch?.(pool),
    transcode: opts.transcode,
    logger,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const live = streams;
  return {
    pool,
    streams: live,
    base,
    url: (stream: string, what: string) => `${base}/live/video-to-video/${stream}/${what}`,
    status: async (stream: string) => (await fetch(`${base}/live/video-to-video/${stream}/status`)).json(),
    async close() {
      await streams?.closeAll();
      // A test that failed mid-response leaves it open; app.close() would wait for it.
      app.server.closeAllConnections();
      await app.close();
      pool.stop();
    },
  };
}
