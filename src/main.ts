// lp-gateway's command line: read the config, start the gateway, and start the local
// orchestrator beside it when no orchestrator is configured.
import pino from 'pino';
import { type Config, ConfigError, loadConfig, usage } from './config/index.ts';
import { buildGatewayApp } from './http/app.ts';
import { LocalOrchestrator } from './local-orchestrator/server.ts';
import { OrchestratorDirectory } from './orchestrators/directory.ts';
import { offchainIdentity } from './payments/identity.ts';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
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
  if (config.network !== 'offchain') {
    console.error(
      `config: network: ${config.network} needs on-chain payments, which this version does not have yet; use -network offchain`,
    );
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel });

  let local: LocalOrchestrator | undefined;
  let orchestrators = [...config.orchAddr];
  if (orchestrators.length === 0) {
    const lo = config.localOrchestrator;
    local = await LocalOrchestrator.start({
      serviceAddr: lo.serviceAddr.addr,
      models: [...lo.models],
      pricePerUnit: lo.pricePerUnit,
      pixelsPerUnit: lo.pixelsPerUnit,
      capacity: lo.capacity,
      secret: Buffer.from(lo.secret.reveal(), 'utf8'),
      logger,
    });
    orchestrators = [local.url];
  }

  const directory = new OrchestratorDirectory(orchestrators, {
    identity: offchainIdentity,
    timeoutMs: config.grpcTimeoutMs,
    maxAgeMs: 60_000,
    concurrency: 8,
    logger,
  });
  const app = await buildGatewayApp({ directory, bodyLimitBytes: config.http.bodyLimitBytes, logger });
  await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  await directory.refresh();

  const shown = config.httpAddr.host === '0.0.0.0' ? '127.0.0.1' : config.httpAddr.host;
  const base = `http://${shown.includes(':') ? `[${shown}]` : shown}:${config.httpAddr.port}`;
  const lines = [
    '',
    `lp-gateway is running (network: ${config.network})`,
    `  gateway:        ${base}/`,
    `  orchestrators:  ${base}/orchestrators`,
    local
      ? `  local orchestrator (embedded, models: ${config.localOrchestrator.models.join(', ')}): ${local.url}`
      : `  orchestrators configured: ${orchestrators.join(', ')}`,
    '',
  ];
  console.log(lines.join('\n'));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await app.close();
    await local?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  console.error(`lp-gateway: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
