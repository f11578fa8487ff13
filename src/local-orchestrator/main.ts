// Runs the local orchestrator on its own (npm run orchestrator), e.g. for another gateway to use.
import pino from 'pino';
import { formatFault } from '../config/fault.ts';
import { type Config, ConfigError, loadConfig, usage } from '../config/index.ts';
import { LocalOrchestrator, optionsFromConfig } from './server.ts';

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
  ...optionsFromConfig(lo, pino({ level: config.logLevel })),
  faultExitsProcess: true,
});
// Stable, machine-read (test/helpers/orchestrator-process.ts): a line starting with
// "local orchestrator listening on <url>", the URL being followed by a space or the line's end.
console.log(`local orchestrator listening on ${orch.url} (gRPC GetOrchestrator and HTTPS on one port)`);
console.log(`use it from a gateway with: -orchAddr ${orch.url}`);
if (lo.fault.kind !== 'none') console.log(`fault injection (for tests and demos): ${formatFault(lo.fault)}`);

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  // Open streams may keep a graceful close waiting; do not let them keep the process alive.
  setTimeout(() => process.exit(code), 3000).unref();
  await orch.close().catch((err: Error) => console.error(`local orchestrator: close failed: ${err.message}`));
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
// Started by a harness with an IPC channel (tests): never outlive it, even if it is killed.
if (process.channel) {
  process.on('disconnect', () => void stop(1));
  process.channel.unref();
}
