// Runs the local orchestrator on its own (npm run orchestrator), e.g. for another gateway to use.
// With -network other than offchain it takes tickets: the keystore account is the recipient, and
// its ticket params follow the chain's L1 block and round (src/local-orchestrator/onchain.ts).
import pino from 'pino';
import { formatFault } from '../config/fault.ts';
import { type Config, ConfigError, loadConfig, usage } from '../config/index.ts';
import { ArgsError } from '../config/split-args.ts';
import type { LivepeerChain } from '../payments/chain.ts';
import {
  type ChainOverrides,
  connectConfiguredChain,
  loadConfiguredAccount,
  takeChainOverrides,
} from '../payments/onchain-setup.ts';
import { type ChainClock, chainClock, onChainPayments } from './onchain.ts';
import {
  describeRunner,
  LocalOrchestrator,
  type LocalOrchestratorPayments,
  optionsFromConfig,
} from './server.ts';

/** How often the chain's L1 block and round are read again. */
const CHAIN_CLOCK_MS = 5000;

let config: Config;
let overrides: ChainOverrides;
try {
  const split = takeChainOverrides(process.argv.slice(2));
  overrides = split.overrides;
  config = loadConfig({ argv: split.config });
} catch (err) {
  if (!(err instanceof ConfigError || err instanceof ArgsError)) throw err;
  console.error(err.message);
  process.exit(2);
}
if (config.help) {
  console.log(usage());
  process.exit(0);
}
const lo = config.localOrchestrator;
const logger = pino({ level: config.logLevel });
let chain: LivepeerChain | undefined;
let clock: ChainClock | undefined;
let payments: LocalOrchestratorPayments | undefined;
if (config.network !== 'offchain') {
  try {
    const account = await loadConfiguredAccount(config);
    chain = await connectConfiguredChain(config, overrides, logger);
    clock = await chainClock(chain, CHAIN_CLOCK_MS, logger);
    payments = onChainPayments(clock, { recipient: account.address, ticketEV: config.ticketEV });
  } catch (err) {
    console.error(`local orchestrator: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
    await chain?.close();
    process.exit(2);
  }
}
const orch = await LocalOrchestrator.start({
  ...optionsFromConfig(lo, logger),
  faultExitsProcess: true,
  payments,
});
// Stable, machine-read (test/helpers/orchestrator-process.ts): a line starting with
// "local orchestrator listening on <url>", the URL being followed by a space or the line's end.
console.log(`local orchestrator listening on ${orch.url} (gRPC GetOrchestrator and HTTPS on one port)`);
console.log(`use it from a gateway with: -orchAddr ${orch.url}`);
if (lo.fault.kind !== 'none') console.log(`fault injection (for tests and demos): ${formatFault(lo.fault)}`);
const runner = describeRunner(lo.runner);
if (runner) console.log(`live jobs behave like ai-runner pipelines (for tests and demos): ${runner}`);
if (payments) {
  console.log(
    `taking tickets on ${config.network} as ${payments.recipient} (ticket EV ${config.ticketEV} wei, price ${lo.pricePerUnit} wei per ${lo.pixelsPerUnit} pixels)`,
  );
}

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  // Open streams may keep a graceful close waiting; do not let them keep the process alive.
  setTimeout(() => process.exit(code), 3000).unref();
  await orch.close().catch((err: Error) => console.error(`local orchestrator: close failed: ${err.message}`));
  clock?.stop();
  await chain?.close();
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
// Started by a harness with an IPC channel (tests): never outlive it, even if it is killed.
if (process.channel) {
  process.on('disconnect', () => void stop(1));
  process.channel.unref();
}
