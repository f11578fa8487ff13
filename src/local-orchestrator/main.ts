// Runs the local orchestrator on its own (npm run orchestrator), e.g. for another gateway to use.
import pino from 'pino';
import { type Config, ConfigError, loadConfig, usage } from '../config/index.ts';
import { LocalOrchestrator } from './server.ts';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
if (config.help) {
  console.log(usage());
  process.exit(0);
}
const lo = config.localOrchestrator;
const orch = await LocalOrchestrator.start({
  serviceAddr: lo.serviceAddr.addr,
  models: [...lo.models],
  pricePerUnit: lo.pricePerUnit,
  pixelsPerUnit: lo.pixelsPerUnit,
  capacity: lo.capacity,
  secret: Buffer.from(lo.secret.reveal(), 'utf8'),
  logger: pino({ level: config.logLevel }),
});
console.log(`local orchestrator listening on ${orch.url} (gRPC GetOrchestrator and HTTPS on one port)`);
console.log(`use it from a gateway with: -orchAddr ${orch.url}`);
const stop = async () => {
  await orch.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
