// lp-gateway's command line: read the config, start the gateway, and start the local
// orchestrator beside it when no orchestrator is configured (off chain only). On chain
// (src/payments/onchain-setup.ts) the keystore account pays and the transcoder pool is a source.
import { networkInterfaces, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AiJobRunner } from './batch/ai-client.ts';
import { ResultStore } from './batch/ai-results.ts';
import { RedisClusterStore } from './cluster/redis.ts';
import { parseHeaderList } from './config/header-list.ts';
import { type Config, ConfigError, loadConfig, usage } from './config/index.ts';
import { buildGatewayApp } from './http/app.ts';
import { BodyBudget, defaultBodyBudgetBytes, defaultTranscodeMaxInFlight } from './http/input-guard.ts';
import { createMetrics } from './http/metrics.ts';
import { Drain, SseClients } from './http/operator-routes.ts';
import { EventsWebhook } from './live/events-webhook.ts';
import { Heartbeat } from './live/heartbeat.ts';
import { LivePayments } from './live/live-payer.ts';
import { LiveStreams } from './live/registry.ts';
import { RemoteSignerPayments } from './live/remote-payments.ts';
import { StreamEvents } from './live/stream-events.ts';
import { LocalOrchestrator, optionsFromConfig } from './local-orchestrator/server.ts';
import { createLogger } from './log/pretty.ts';
import { type DiscoverySource, StaticSource, WebhookSource } from './orchestrators/discovery.ts';
import { OrchestratorPool } from './orchestrators/pool.ts';
import { PriceCeiling } from './orchestrators/price.ts';
import { offchainIdentity } from './payments/identity.ts';
import { type ChainOverrides, type OnChainGateway, setupOnChain } from './payments/onchain-setup.ts';
import { rtmpPublishHandler } from './rtmp/ingest.ts';
import { RtmpServer } from './rtmp/server.ts';
import { installShutdown } from './shutdown.ts';
import { RemoteSignerClient } from './signer/client.ts';
import { runSigner } from './signer/run.ts';
import { egressBatching, IcePorts } from './webrtc/index.ts';

/** Runs the gateway with these arguments (after the program name); `src/cli.ts` calls it too. */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  chainOverrides: ChainOverrides = {},
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ argv });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  if (config.help) {
    console.log(usage());
    return;
  }
  const logger = createLogger({ level: config.logLevel }, config.logFormat);

  // -remoteSigner: this process is a signer for keyless gateways, not a gateway.
  if (config.remoteSigner) {
    let signer: Awaited<ReturnType<typeof runSigner>>;
    try {
      signer = await runSigner(config, chainOverrides, logger);
    } catch (err) {
      console.error(`lp-gateway: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
      process.exit(2);
    }
    let stopping = false;
    const stopSigner = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      await signer.close();
      process.exit(0);
    };
    process.on('SIGINT', () => void stopSigner('SIGINT'));
    process.on('SIGTERM', () => void stopSigner('SIGTERM'));
    return;
  }

  // -remoteSignerUrl: the signer holds the key and signs every payment; this gateway holds none.
  let remote: RemoteSignerPayments | undefined;
  let signerClient: RemoteSignerClient | undefined;
  const signerHeaders = parseHeaderList(config.remoteSignerHeaders?.reveal() ?? '');
  if (config.remoteSignerUrl !== undefined) {
    signerClient = new RemoteSignerClient({ url: config.remoteSignerUrl, headers: signerHeaders });
    try {
      remote = await RemoteSignerPayments.connect({
        client: signerClient,
        intervalMs: config.livePaymentInterval,
        logger,
      });
    } catch (err) {
      // As go-livepeer's gateway: a signer that cannot be asked at start is fatal.
      console.error(`lp-gateway: cannot use the remote signer: ${(err as Error).message.split('\n')[0]}`);
      process.exit(2);
    }
    logger.info(
      { signer: signerClient.url, address: remote.identity.address },
      'live payments go through the remote signer; batch AI and transcoding are refused (503)',
    );
  }

  // On chain: the keystore account pays and signs, and the transcoder pool is a source.
  let onchain: OnChainGateway | undefined;
  if (config.network !== 'offchain') {
    try {
      onchain = await setupOnChain(config, chainOverrides, logger);
    } catch (err) {
      console.error(`lp-gateway: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
      process.exit(2);
    }
  }
  const identity = onchain?.identity ?? remote?.identity ?? offchainIdentity;

  const semiSpace = youngGenerationMb();
  if (semiSpace !== undefined)
    logger.info({ maxSemiSpaceMb: semiSpace }, `node: young generation up to ${semiSpace} MB per semi-space`);
  else
    logger.info(
      "node: young generation at V8's default (16 MB per semi-space); bin/lp-gateway.js (npm start) runs with 64, which keeps stream starts from stalling the media loop on collections",
    );

  const batching = egressBatching();
  if (batching.on)
    logger.info(
      { udpSegmentation: batching.segmentation },
      'egress: each frame goes to a viewer in one system call (sendmmsg, UDP segmentation where the kernel allows)',
    );
  else
    logger.warn(
      { reason: batching.reason },
      'egress: UDP sends go packet by packet (fan-out costs more CPU; scripts/build-native.sh builds the batched sender)',
    );

  let local: LocalOrchestrator | undefined;
  let orchestrators = [...config.orchAddr];
  if (!onchain && !remote && orchestrators.length === 0 && config.orchWebhookUrl === undefined) {
    const lo = config.localOrchestrator;
    local = await LocalOrchestrator.start(optionsFromConfig(lo, logger));
    orchestrators = [local.url];
  }

  const sources: DiscoverySource[] = onchain ? [onchain.source] : [];
  if (orchestrators.length > 0) sources.push(new StaticSource(orchestrators, local ? 'local' : 'orchAddr'));
  // As go-livepeer: with neither -orchAddr nor -orchWebhookUrl, the signer's discovery (its headers too).
  const signerDiscovery =
    signerClient && orchestrators.length === 0 && config.orchWebhookUrl === undefined
      ? signerClient.discoveryUrl
      : undefined;
  if (signerDiscovery) {
    sources.push(
      new WebhookSource({
        url: signerDiscovery,
        headers: signerHeaders,
        refreshIntervalMs: config.orchWebhookRefreshInterval,
        timeoutMs: config.grpcTimeoutMs,
        logger,
      }),
    );
  }
  if (config.orchWebhookUrl !== undefined) {
    sources.push(
      new WebhookSource({
        url: config.orchWebhookUrl,
        refreshIntervalMs: config.orchWebhookRefreshInterval,
        timeoutMs: config.grpcTimeoutMs,
        logger,
      }),
    );
  }
  // -redisUrl: this node is one of several; they share the stream registry, orchestrator
  // suspensions and latencies, and per-account limits (docs/scale-out.md).
  const cluster = config.redisUrl
    ? await RedisClusterStore.connect({
        url: config.redisUrl.reveal(),
        nodeUrl: config.clusterNodeUrl as string,
        leaseMs: config.clusterLeaseTtl,
        logger,
      })
    : undefined;
  const pool = new OrchestratorPool({
    share: cluster
      ? { suspension: (s) => cluster.shareSuspension(s), latency: (l) => cluster.shareLatency(l) }
      : undefined,
    sources,
    identity,
    grpcTimeoutMs: config.grpcTimeoutMs,
    infoMaxAgeMs: config.orchInfoMaxAge,
    concurrency: config.discoveryConcurrency,
    priceCeiling: new PriceCeiling({
      maxPricePerUnit: config.maxPricePerUnit,
      pixelsPerUnit: config.pixelsPerUnit,
      perCapability: config.maxPricePerCapability?.entries,
    }),
    logger,
  });
  cluster?.onSuspension((s) => pool.applySharedSuspension(s));
  cluster?.onLatency((l) => pool.applySharedLatency(l));
  // One ticket sender per orchestrator for live, batch AI and transcoding alike: nonces are
  // counted in one place.
  const tickets = onchain ? new LivePayments(onchain.payments) : undefined;
  const live = config.live;
  // Shared WebRTC ports (-liveWebrtcUdpAddr / -liveWebrtcTcpAddr), announcing -liveNatIp if set.
  const natIp = live.natIp.length > 0 ? [...live.natIp] : undefined;
  const icePorts =
    live.webrtcUdpAddr || live.webrtcTcpAddr
      ? await IcePorts.open({
          udp: live.webrtcUdpAddr,
          tcp: live.webrtcTcpAddr,
          announce: natIp,
          logger,
        }).catch((err: Error) => {
          throw new Error(`cannot open the WebRTC ports: ${err.message}`);
        })
      : undefined;
  // Every stream's events, for the events webhook and /live/events.
  const events = new StreamEvents({ gateway: config.gatewayHost ?? '' });
  const eventsWebhook = config.liveAIEventsWebhookUrl
    ? new EventsWebhook({
        url: config.liveAIEventsWebhookUrl,
        headers: parseHeaderList(config.liveAIEventsWebhookHeaders?.reveal() ?? ''),
        logger,
      })
    : undefined;
  eventsWebhook?.attach(events);
  const drain = new Drain();
  const sse = new SseClients();
  // Created before the registry it reads, which reports into it.
  let streams: LiveStreams | undefined;
  const metrics = createMetrics({
    streams: () => streams as LiveStreams,
    pool,
    operator: { events: eventsWebhook, sse, heartbeat: () => heartbeat, draining: () => drain.draining },
  });
  streams = new LiveStreams({
    pool,
    identity,
    limits: {
      minSegmentDurationMs: live.minSegmentDurationMs,
      pliIntervalMs: live.pliIntervalMs,
      maxViewers: live.maxViewers,
      ingestTimeoutMs: live.ingestTimeoutMs,
      maxStreams: live.maxStreams,
      accountMaxStreams: live.accountMaxStreams,
      accountMaxViewers: live.accountMaxViewers,
      firstOutputTimeoutMs: live.firstOutputTimeoutMs,
      noOutputTimeoutMs: live.noOutputTimeoutMs,
      maxSwaps: live.maxSwaps,
      swapWindowMs: live.swapWindowMs,
      noOrchestratorGraceMs: live.noOrchestratorGraceMs,
    },
    network: { hostAddresses: natIp ?? localHostAddresses(), ports: icePorts },
    payments: tickets ?? remote,
    metrics: metrics.live,
    events,
    rtmpOutputUrl: config.liveRtmpOutput,
    cluster,
    nodeUrl: cluster ? config.clusterNodeUrl : undefined,
    logger,
  });
  const heartbeat = config.liveAIHeartbeatURL
    ? new Heartbeat({
        url: config.liveAIHeartbeatURL,
        headers: parseHeaderList(config.liveAIHeartbeatHeaders?.reveal() ?? ''),
        intervalMs: config.liveAIHeartbeatInterval,
        ids: () => streams.liveIds(),
        terminate: (ids, reason) => streams.terminate(ids, reason),
        logger,
      })
    : undefined;
  const ai = config.ai;
  const results = new ResultStore({
    dir: ai.resultDir ?? join(tmpdir(), 'lp-gateway-results'),
    ttlMs: ai.resultTtl,
    logger,
  });
  await results.start();
  const aiRunner = new AiJobRunner({
    pool,
    identity,
    payments: tickets,
    maxTries: ai.maxTries,
    retryTimeoutMs: ai.processingRetryTimeout,
    tryTimeoutMs: ai.tryTimeout,
    replyTimeoutMs: ai.replyTimeout,
    maxInFlight: ai.maxInFlight,
    results,
    logger,
  });
  const app = await buildGatewayApp({
    pool,
    streams,
    batch: { runner: aiRunner, results, bodyLimitBytes: ai.bodyLimitBytes, publicUrl: ai.publicUrl },
    transcode: {
      identity,
      payments: tickets,
      profiles: config.transcodingOptions.profiles,
      maxSegmentBytes: config.transcode.maxSegmentBytes,
      maxInFlight:
        config.transcode.maxInFlight ??
        defaultTranscodeMaxInFlight(totalmem(), config.transcode.maxSegmentBytes),
      maxAttempts: config.transcode.maxAttempts,
      hlsWindowSegments: config.transcode.hlsWindowSegments,
      streamIdleTimeoutMs: config.transcode.streamIdleTimeout,
      maxStreams: config.transcode.hlsMaxStreams,
    },
    live: {
      iceServers: live.iceServers,
      whipAuthToken: live.whipAuthToken,
      whepAuthToken: live.whepAuthToken,
      operatorToken: live.operatorToken,
      authWebhook: authWebhookOf(config),
      gatewayHost: config.gatewayHost,
      defaultModel: live.defaultModel,
      publicUrl: live.publicUrl,
      clusterNodeUrl: cluster ? config.clusterNodeUrl : undefined,
    },
    operator: { drain, sse },
    bodyLimitBytes: config.http.bodyLimitBytes,
    bodyBudget: new BodyBudget(config.http.bodyBudgetBytes ?? defaultBodyBudgetBytes(totalmem())),
    // go-livepeer pays only live video through a signer (docs/remote-signer.md §6).
    refused: remote ? { reason: REMOTE_SIGNER_REFUSAL } : undefined,
    metrics: metrics.registry,
    logger,
  });
  await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  const shownHost = config.httpAddr.host === '0.0.0.0' ? '127.0.0.1' : config.httpAddr.host;
  const httpBase = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${config.httpAddr.port}`;
  const rtmp = await startRtmpIngest(config, streams, httpBase, logger);
  pool.start();
  await pool.refresh();
  heartbeat?.start();

  const base = httpBase;
  const lines = [
    '',
    `lp-gateway is running (network: ${config.network})`,
    `  gateway:          ${base}/`,
    `  publish a camera: ${base}/publish.html`,
    rtmp.line,
    `  live streams:     ${base}/status.html`,
    `  orchestrators:    ${base}/orchestrators`,
    `  REST API (batch AI, transcoding): ${base}/api.html`,
    `  push segments:    PUT ${base}/live/{id}/{seq}.ts (${config.transcodingOptions.profiles.map((p) => p.name).join(', ')}); HLS at ${base}/stream/{id}.m3u8`,
    local
      ? `  local orchestrator (embedded, live models: ${config.localOrchestrator.models.join(', ')}; CPU stand-ins for text-to-image, image-to-image, upscale; transcoding): ${local.url}`
      : `  orchestrator sources: ${[
          ...(onchain ? ['on-chain transcoder pool'] : []),
          ...(orchestrators.length ? [orchestrators.join(', ')] : []),
          ...(config.orchWebhookUrl ? [`from webhook ${config.orchWebhookUrl}`] : []),
          ...(signerDiscovery ? [`the remote signer's discovery ${signerDiscovery}`] : []),
        ].join('; ')}`,
    ...(onchain?.bannerLines ?? []),
    ...(remote && signerClient
      ? [
          `  payments:         through the remote signer ${signerClient.url} (account ${remote.identity.address}); no key here`,
          `  not available:    batch AI and transcoding (503): ${REMOTE_SIGNER_REFUSAL}`,
        ]
      : []),
    ...(cluster
      ? [
          `  scale-out:        node ${cluster.nodeId} at ${config.clusterNodeUrl}, sharing streams through Redis (${cluster.connected ? 'connected' : 'not reachable yet: new streams get 503'})`,
        ]
      : []),
    ...webrtcBanner(icePorts, natIp),
    ...operatorBanner(config, base),
    '',
  ];
  console.log(lines.join('\n'));

  installShutdown({
    drain,
    streams,
    sse,
    heartbeat,
    events: eventsWebhook,
    close: [
      () => pool.stop(),
      // After the streams ended: their releases reach Redis before it is closed.
      () => cluster?.close(),
      () => icePorts?.close(),
      () => app.close(),
      () => rtmp.server?.close(),
      async () => {
        results.stop();
        await results.flush();
      },
      () => local?.close(),
      () => onchain?.close(),
    ],
    timeoutMs: config.shutdownTimeout,
    logger,
  });
}

/** go-livepeer's live auth webhook, asked for WHIP and RTMP publishes alike. */
function authWebhookOf(config: Config) {
  return config.liveAIAuthWebhookUrl
    ? {
        url: config.liveAIAuthWebhookUrl,
        apiKey: config.liveAIAuthApiKey,
        timeoutMs: config.liveAIAuthWebhookTimeout,
      }
    : undefined;
}

/**
 * The RTMP ingest on -rtmpAddr. A busy port leaves the gateway running without it (WHIP still
 * works) and says so, since the default 1935 is often taken by another RTMP server.
 */
async function startRtmpIngest(
  config: Config,
  streams: LiveStreams,
  httpBase: string,
  logger: Logger,
): Promise<{ server?: RtmpServer; line: string }> {
  const addr = config.rtmpAddr;
  if (!addr) return { line: '  RTMP ingest:      off (-rtmpAddr off)' };
  const server = new RtmpServer({
    onPublish: rtmpPublishHandler({
      streams,
      defaultModel: config.live.defaultModel,
      whipAuthToken: config.live.whipAuthToken,
      authWebhook: authWebhookOf(config),
      httpBase: config.live.publicUrl ?? (config.gatewayHost ? `https://${config.gatewayHost}` : httpBase),
      gatewayHost: config.gatewayHost ?? new URL(httpBase).host,
      logger: logger.child({ rtmp: true }),
    }),
    logger,
  });
  try {
    const port = await server.listen(addr.port, addr.host);
    const host = addr.host === '0.0.0.0' ? '127.0.0.1' : addr.host;
    return {
      server,
      line: `  publish RTMP:     rtmp://${host.includes(':') ? `[${host}]` : host}:${port}/live/{stream}`,
    };
  } catch (err) {
    logger.error({ rtmpAddr: addr.addr, err: (err as Error).message }, 'RTMP ingest not started');
    return { line: `  RTMP ingest:      not started: ${addr.addr}: ${(err as Error).message}` };
  }
}

/** The operator interfaces that are on (URLs without credentials or query). */
function operatorBanner(config: Config, base: string): string[] {
  const shown = (u: string) => {
    const url = new URL(u);
    return `${url.origin}${url.pathname}`;
  };
  return [
    ...(config.liveAIAuthWebhookUrl ? [`  live auth webhook: ${shown(config.liveAIAuthWebhookUrl)}`] : []),
    ...(config.liveAIHeartbeatURL
      ? [`  heartbeat:        ${shown(config.liveAIHeartbeatURL)} every ${config.liveAIHeartbeatInterval} ms`]
      : []),
    ...(config.liveAIEventsWebhookUrl ? [`  events webhook:   ${shown(config.liveAIEventsWebhookUrl)}`] : []),
    ...(config.live.operatorToken ? [`  stream events:    ${base}/live/events (SSE, operator token)`] : []),
    `  health:           ${base}/healthz (alive), ${base}/readyz (takes streams)`,
  ];
}

const REMOTE_SIGNER_REFUSAL =
  'this gateway pays through a remote signer, which pays live video only (as go-livepeer): batch AI and segment transcoding need a gateway with its own key';

/** Where WebRTC listens, when the shared ports are on (the ports may have been picked: port 0). */
function webrtcBanner(ports: IcePorts | undefined, natIp: string[] | undefined): string[] {
  if (!ports) return natIp ? [`  WebRTC: a UDP port per peer, announced as ${natIp.join(', ')}`] : [];
  const stats = ports.stats();
  const line = (
    name: string,
    s: { port: number; announced: string[] } | undefined,
    host: string | undefined,
  ) =>
    s ? [`  WebRTC ${name}: ${host}:${s.port} for every peer, announced as ${s.announced.join(', ')}`] : [];
  return [...line('UDP', stats.udp, ports.udp?.host), ...line('TCP', stats.tcp, ports.tcp?.host)];
}

/** Loopback first (a browser on this machine), then this machine's own IPv4 addresses. */
function localHostAddresses(): string[] {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal)
    .map((i) => i!.address);
  return ['127.0.0.1', ...addresses];
}

/** Reports a failed start in one line and exits 1. */
export function exitOnError(err: unknown): never {
  console.error(`lp-gateway: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

// Run only as the entry point (`tsx src/main.ts`), not when src/cli.ts imports it.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(exitOnError);
}

/** --max-semi-space-size as this process was started with (bin/node-flags.js), or undefined. */
function youngGenerationMb(): number | undefined {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter((a) =>
    /^--max[-_]semi[-_]space[-_]size=\d+$/.test(a),
  );
  const flag = flags.at(-1);
  return flag === undefined ? undefined : Number(flag.split('=')[1]);
}
