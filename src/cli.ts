// lp-gateway's commands (bin/lp-gateway.js runs this file through tsx):
//
//   lp-gateway [start] [flags]            run the gateway, exactly as `npm start` (src/main.ts)
//   lp-gateway balance [flags]            the account's ETH, TicketBroker deposit and reserve
//   lp-gateway deposit --deposit X --reserve Y [flags]
//                                         TicketBroker.fundDepositAndReserve from the account
//
// balance and deposit take the gateway's own config (flags, env, YAML: -network, -ethUrl,
// -ethKeystorePath, -ethPassword, -ethController) plus a few of their own (`--deposit`,
// `--reserve`, `--chainId`, `--aiServiceRegistry`); those are taken out of argv before the rest
// goes to loadConfig(), whose unknown-flag check would refuse them. Every failure is one line on
// stderr and exit status 1; the password and private key are never printed.
import { formatEther, parseEther } from 'viem';
import { type Config, loadConfig } from './config/index.ts';
import { splitArgs } from './config/split-args.ts';
import { type AccountBalance, balance, fundDepositAndReserve } from './payments/funding.ts';
import {
  CHAIN_OVERRIDE_FLAGS,
  connectConfiguredChain,
  loadConfiguredAccount,
  requireKeystoreConfig,
  SetupError,
  takeChainOverrides,
} from './payments/onchain-setup.ts';

const FUNDING_COMMANDS = ['balance', 'deposit'] as const;
type FundingCommand = (typeof FUNDING_COMMANDS)[number];

/** The funding commands' own flags (with - or --, `name value` or `name=value`). */
const OWN_FLAGS: Record<FundingCommand, readonly string[]> = {
  balance: [...CHAIN_OVERRIDE_FLAGS],
  deposit: ['deposit', 'reserve', ...CHAIN_OVERRIDE_FLAGS],
};

const CHAIN_FLAGS =
  '-network arbitrum-one-mainnet -ethUrl URL -ethKeystorePath FILE -ethPassword PASSWORD|FILE';

const COMMANDS_HELP = [
  'Commands:',
  '  lp-gateway [start] [flags]   run the gateway (the flags below)',
  `  lp-gateway balance ${CHAIN_FLAGS}`,
  '        print the account address, ETH balance, TicketBroker deposit, reserve and withdraw round',
  `  lp-gateway deposit --deposit AMOUNT --reserve AMOUNT ${CHAIN_FLAGS}`,
  '        fund the TicketBroker deposit and reserve (AMOUNT: wei, or ETH like 0.05eth; default 0)',
  '  start, balance and deposit also take -ethController ADDRESS, --chainId ID (default 42161,',
  '  Arbitrum One) and --aiServiceRegistry ADDRESS; -ethPassword may come from the environment (LP_ETHPASSWORD).',
  '',
].join('\n');

/** A usage or input problem of a command; its message is one line. */
class CliError extends SetupError {}

/** Wei as digits (optionally `wei`), or ETH with an `eth` suffix: `1000`, `0.05eth`, `1 ETH`. */
export function parseAmount(flag: string, raw: string): bigint {
  const text = raw.trim();
  const eth = /^(\d+(?:\.\d{1,18})?|\.\d{1,18})\s*eth$/i.exec(text);
  if (eth) return parseEther(eth[1]!);
  const wei = /^(\d+)\s*(?:wei)?$/i.exec(text);
  if (wei) return BigInt(wei[1]!);
  throw new CliError(
    `--${flag} must be wei (digits) or ETH with an eth suffix, like 0.05eth (got ${JSON.stringify(raw.slice(0, 40))})`,
  );
}

const eth = (wei: bigint) => `${formatEther(wei)} ETH (${wei} wei)`;

function balanceLines(b: AccountBalance): string[] {
  return [
    `address:        ${b.address}`,
    `ETH balance:    ${eth(b.eth)}`,
    `deposit:        ${eth(b.deposit)}`,
    `reserve:        ${eth(b.reserve)}`,
    `withdraw round: ${b.withdrawRound === 0n ? '0 (no unlock in progress)' : String(b.withdrawRound)}`,
  ];
}

async function funding(command: FundingCommand, argv: readonly string[]): Promise<void> {
  const { own, config: configArgv } = splitArgs(argv, OWN_FLAGS[command]);
  const config: Config = loadConfig({ argv: configArgv });
  if (config.help) {
    console.log(COMMANDS_HELP);
    return;
  }
  if (config.network === 'offchain') {
    throw new CliError(
      `needs on-chain settings: ${CHAIN_FLAGS} (the network is offchain; give -network arbitrum-one-mainnet)`,
    );
  }
  requireKeystoreConfig(config);
  let deposit = 0n;
  let reserve = 0n;
  if (command === 'deposit') {
    deposit = own.has('deposit') ? parseAmount('deposit', own.get('deposit')!) : 0n;
    reserve = own.has('reserve') ? parseAmount('reserve', own.get('reserve')!) : 0n;
    if (deposit === 0n && reserve === 0n) {
      throw new CliError('needs --deposit AMOUNT and/or --reserve AMOUNT greater than 0');
    }
  }
  const account = await loadConfiguredAccount(config);
  const chain = await connectConfiguredChain(config, {
    chainId: own.get('chainId'),
    aiServiceRegistry: own.get('aiServiceRegistry'),
  });
  try {
    if (command === 'balance') {
      console.log(balanceLines(await balance(chain, account.address)).join('\n'));
      return;
    }
    const result = await fundDepositAndReserve(chain, account, deposit, reserve);
    console.log(
      [
        `funded TicketBroker: deposit +${formatEther(deposit)} ETH, reserve +${formatEther(reserve)} ETH`,
        `tx:             ${result.txHash}`,
        `fee:            ${eth(result.fee)}`,
        ...balanceLines(result.balance),
      ].join('\n'),
    );
  } finally {
    await chain.close();
  }
}

/** One line, whatever the error. */
function oneLineMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim();
}

async function run(argv: readonly string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === undefined || first.startsWith('-') || first === 'start') {
    const gatewayArgs = first === 'start' ? rest : argv;
    if (gatewayArgs.some((a) => /^--?(h|help)(=(1|t|true|T|TRUE|True))?$/.test(a))) {
      process.stdout.write(`${COMMANDS_HELP}\n`);
    }
    let split: ReturnType<typeof takeChainOverrides>;
    try {
      split = takeChainOverrides(gatewayArgs);
    } catch (err) {
      console.error(`lp-gateway: ${oneLineMessage(err)}`);
      process.exit(2);
    }
    // Loaded here only: the whole gateway is a lot to compile for `balance` or `deposit`.
    const { exitOnError, main } = await import('./main.ts');
    await main(split.config, split.overrides).catch(exitOnError);
    return;
  }
  if (first === 'help') {
    process.stdout.write(`${COMMANDS_HELP}\n`);
    return;
  }
  if (!(FUNDING_COMMANDS as readonly string[]).includes(first)) {
    console.error(
      `lp-gateway: unknown command ${JSON.stringify(first.slice(0, 40))} (commands: start, balance, deposit; lp-gateway help)`,
    );
    process.exit(2);
  }
  const command = first as FundingCommand;
  try {
    await funding(command, rest);
  } catch (err) {
    // CliError, ConfigError, ChainError and KeystoreError are one line already; anything else
    // is cut to its first line.
    console.error(`lp-gateway ${command}: ${oneLineMessage(err)}`);
    process.exit(1);
  }
  process.exit(0);
}

await run(process.argv.slice(2));
