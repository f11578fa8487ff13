// `lp-gateway start -remoteSigner ...`: the signer as its own process. The keystore account, the
// chain reads and the ticket signing pool are the on-chain gateway's (payments/onchain-setup.ts);
// the routes are go-livepeer's (server.ts). It refuses to listen beyond loopback without auth.
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { parseHeaderList } from '../config/header-list.ts';
import type { Config } from '../config/index.ts';
import { LivePayments } from '../live/live-payer.ts';
import { type DiscoverySource, StaticSource, WebhookSource } from '../orchestrators/discovery.ts';
import { OrchestratorPool } from '../orchestrators/pool.ts';
import { PriceCeiling } from '../orchestrators/price.ts';
import { type ChainOverrides, SetupError, setupOnChain } from '../payments/onchain-setup.ts';
import { RemoteSigner } from './engine.ts';
import { MemoryLedger } from './ledger.ts';
import { buildSignerApp } from './server.ts';

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`: the hosts go-livepeer lets a signer use without auth. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) !== 6) return false;
  // The URL parser writes IPv6 in its shortest form; an IPv4-mapped one as ::ffff:7f00:1.
  const n = new URL(`http://[${h}]/`).hostname;
  return n === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(n);
}

/** Why this signer must not start (public address, no auth), or undefined. */
export function publicWithoutAuth(config: Config): string | undefined {
  const hasAuth = config.remoteSignerAuthToken !== undefined || config.remoteSignerWebhookUrl !== undefined;
  if (hasAuth || config.remoteSignerAllowNoAuth || isLoopback(config.httpAddr.host)) return undefined;
  return (
    `refusing to start: a remote signer on the non-loopback address ${config.httpAddr.addr} with neither ` +
    '-remoteSignerAuthToken nor -remoteSignerWebhookUrl would sign payments from this account for anyone who reaches it. ' +
    'Set one of them, listen on 127.0.0.1:PORT, or pass -remoteSignerAllowNoAuth to override'
  );
}

export interface RunningSigner {
  /** `http://host:port` it listens on. */
  url: string;
  address: string;
  close(): Promise<void>;
}

export async function runSigner(
  config: Config,
  overrides: ChainOverrides,
  logger: Logger,
): Promise<RunningSigner> {
  const refusal = publicWithoutAuth(config);
  if (refusal) throw new SetupError(refusal);
  if (!config.remoteSignerAuthToken && !config.remoteSignerWebhookUrl) {
    logger.warn(
      'remote signer has no auth (-remoteSignerAuthToken, -remoteSignerWebhookUrl): /generate-live-payment signs payments from this account for any caller that reaches it',
    );
  }
  const onchain = await setupOnChain(config, overrides, logger);
  const closers: (() => Promise<unknown>)[] = [() => onchain.close()];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    const ceiling = new PriceCeiling({
      maxPricePerUnit: config.maxPricePerUnit,
      pixelsPerUnit: config.pixelsPerUnit,
      perCapability: config.maxPricePerCapability?.entries,
    });
    const payments = new LivePayments(onchain.payments);
    const signer = new RemoteSigner({
      account: onchain.payments.account,
      identity: onchain.identity,
      ticketSigner: onchain.payments.signer!,
      validateOptions: () => payments.validateOptions(),
      ceiling,
      ledger: new MemoryLedger({ maxAgeMs: config.remoteSignerStateTtl }),
      webhook: config.remoteSignerWebhookUrl
        ? {
            url: config.remoteSignerWebhookUrl,
            headers: parseHeaderList(config.remoteSignerWebhookHeaders?.reveal() ?? ''),
          }
        : undefined,
      logger: logger.child({ component: 'signer' }),
    });
    await signer.start();

    let discovery: { pool: OrchestratorPool; ceiling: PriceCeiling } | undefined;
    if (config.remoteDiscovery) {
      // go-livepeer's precedence: the webhook, else -orchAddr, else the chain.
      const source: DiscoverySource = config.orchWebhookUrl
        ? new WebhookSource({
            url: config.orchWebhookUrl,
            refreshIntervalMs: config.orchWebhookRefreshInterval,
            timeoutMs: config.grpcTimeoutMs,
            logger,
          })
        : config.orchAddr.length > 0
          ? new StaticSource(config.orchAddr, 'orchAddr')
          : onchain.source;
      const pool = new OrchestratorPool({
        sources: [source],
        identity: onchain.identity,
        grpcTimeoutMs: config.grpcTimeoutMs,
        infoMaxAgeMs: config.orchInfoMaxAge,
        concurrency: config.discoveryConcurrency,
        priceCeiling: ceiling,
        logger,
      });
      pool.start();
      closers.push(async () => pool.stop());
      void pool.refresh();
      discovery = { pool, ceiling };
    }

    const app = await buildSignerApp({ signer, authToken: config.remoteSignerAuthToken, discovery, logger });
    closers.push(() => app.close());
    await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
    const { port } = app.server.address() as { port: number };
    const host = config.httpAddr.host.includes(':') ? `[${config.httpAddr.host}]` : config.httpAddr.host;
    const url = `http://${host}:${port}`;
    const auth = [
      config.remoteSignerAuthToken ? 'bearer token' : '',
      config.remoteSignerWebhookUrl ? `payment webhook ${new URL(config.remoteSignerWebhookUrl).origin}` : '',
    ].filter(Boolean);
    console.log(
      [
        '',
        `lp-gateway remote signer is running (network: ${config.network})`,
        `  signer:           ${url}/ (POST /sign-orchestrator-info, POST /generate-live-payment${discovery ? ', GET /discover-orchestrators' : ''})`,
        `  auth:             ${auth.length ? auth.join(' + ') : 'NONE (loopback only)'}`,
        `  replay:           each payment state is good for one call; sessions kept ${Math.round(config.remoteSignerStateTtl / 1000)} s`,
        ...onchain.bannerLines,
        '',
      ].join('\n'),
    );
    return { url, address: signer.address, close };
  } catch (err) {
    await close();
    throw err;
  }
}
