// Opening the gateway's payment account and the chain, shared by `lp-gateway start` (src/main.ts)
// and the funding commands (src/cli.ts). Every failure is an Error with a one-line message that
// never holds the password or the key.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Address, formatEther, getAddress, type LocalAccount } from 'viem';
import type { Config } from '../config/index.ts';
import { splitArgs } from '../config/split-args.ts';
import type { LivePaymentsOptions } from '../live/live-payer.ts';
import { OnChainSource } from '../orchestrators/onchain-source.ts';
import { ARBITRUM_ONE_CHAIN_ID, ChainError, LivepeerChain } from './chain.ts';
import { accountIdentity, type GatewayIdentity } from './identity.ts';
import { loadKeystoreAccount } from './keystore.ts';
import type { SenderInfo } from './sender.ts';
import { SigningPool } from './signing-pool.ts';

/** A usage or input problem; its message is one line. */
export class SetupError extends Error {
  override readonly name = 'SetupError';
}

/** Overrides for a chain other than Arbitrum One (a test chain): `--chainId`, `--aiServiceRegistry`. */
export interface ChainOverrides {
  chainId?: string;
  aiServiceRegistry?: string;
}

/** The flags that set ChainOverrides. */
export const CHAIN_OVERRIDE_FLAGS = ['chainId', 'aiServiceRegistry'] as const;

/** `--chainId` and `--aiServiceRegistry` taken out of argv; the rest is config. Throws ArgsError. */
export function takeChainOverrides(argv: readonly string[]): { overrides: ChainOverrides; config: string[] } {
  const { own, config } = splitArgs(argv, CHAIN_OVERRIDE_FLAGS);
  return {
    overrides: { chainId: own.get('chainId'), aiServiceRegistry: own.get('aiServiceRegistry') },
    config,
  };
}

export function parseChainId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw.trim()) || Number(raw) < 1) {
    throw new SetupError(`--chainId must be a positive integer (got ${JSON.stringify(raw.slice(0, 40))})`);
  }
  return Number(raw);
}

export function parseAddress(flag: string, raw: string): Address {
  try {
    return getAddress(raw.trim());
  } catch {
    throw new SetupError(`--${flag} must be an address, 0x + 40 hex digits (got ${JSON.stringify(raw)})`);
  }
}

/** The key file: the path itself, or the only file in a keystore directory. */
export function keyFile(path: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new SetupError(
      `-ethKeystorePath ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (!isDir) return path;
  const files = readdirSync(path, { withFileTypes: true }).filter(
    (e) => e.isFile() && !e.name.startsWith('.'),
  );
  if (files.length !== 1) {
    throw new SetupError(
      `-ethKeystorePath ${path} is a directory with ${files.length} key files; give the path of one key file`,
    );
  }
  return join(path, files[0]!.name);
}

/** Throws unless -ethKeystorePath and -ethPassword are both set. */
export function requireKeystoreConfig(config: Config): { path: string; password: string } {
  if (config.ethKeystorePath === undefined) {
    throw new SetupError(`needs -ethKeystorePath (the account's keystore file)`);
  }
  if (config.ethPassword === undefined) {
    throw new SetupError(
      `needs -ethPassword (the keystore password, or a file holding it) or LP_ETHPASSWORD`,
    );
  }
  return { path: config.ethKeystorePath, password: config.ethPassword.reveal() };
}

/**
 * Decrypts the configured keystore (-ethKeystorePath, -ethPassword). `withKey` sees the private
 * key before it is wiped (keystore.ts).
 */
export async function loadConfiguredAccount(
  config: Config,
  withKey?: (key: Uint8Array) => void,
): Promise<LocalAccount> {
  const { path, password } = requireKeystoreConfig(config);
  return loadKeystoreAccount(keyFile(path), password, withKey);
}

/** Connects to the configured chain (-ethUrl, -ethController), Arbitrum One unless overridden. */
export function connectConfiguredChain(
  config: Config,
  overrides: ChainOverrides = {},
  logger?: Logger,
): Promise<LivepeerChain> {
  const expectedChainId =
    overrides.chainId !== undefined ? parseChainId(overrides.chainId) : ARBITRUM_ONE_CHAIN_ID;
  const aiServiceRegistry =
    overrides.aiServiceRegistry !== undefined
      ? parseAddress('aiServiceRegistry', overrides.aiServiceRegistry)
      : undefined;
  // loadConfig() already requires -ethUrl when the network is not offchain.
  return LivepeerChain.connect({
    ethUrl: config.ethUrl!,
    controller: config.ethController,
    expectedChainId,
    aiServiceRegistry,
    logger,
  });
}

/** The latest L1 block, read in the background every `intervalMs`; 0 until the first read. */
export interface L1BlockReader {
  (): bigint;
  stop(): void;
}

export async function cachedL1Block(
  chain: Pick<LivepeerChain, 'l1BlockNumber'>,
  intervalMs: number,
  logger: Logger,
): Promise<L1BlockReader> {
  let latest = 0n;
  const refresh = async () => {
    try {
      latest = await chain.l1BlockNumber();
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'reading the L1 block number failed');
    }
  };
  await refresh();
  const timer = setInterval(() => void refresh(), intervalMs);
  timer.unref();
  const read = (() => latest) as L1BlockReader;
  read.stop = () => clearInterval(timer);
  return read;
}

/**
 * The sender's TicketBroker state and the last initialised round for the checks before paying,
 * re-read at most every `maxAgeMs`. A failed read keeps the last good answer (an RPC hiccup
 * must not stop payments); only with no answer ever does it fail.
 */
export function cachedSenderState(
  chain: Pick<LivepeerChain, 'senderInfo' | 'lastInitializedRound'>,
  address: Address,
  maxAgeMs: number,
  logger: Logger,
): () => Promise<{ senderInfo: SenderInfo; lastInitializedRound: bigint }> {
  let last: { senderInfo: SenderInfo; lastInitializedRound: bigint; at: number } | undefined;
  let inflight: Promise<void> | undefined;
  const refresh = () =>
    (inflight ??= (async () => {
      try {
        const [senderInfo, lastInitializedRound] = await Promise.all([
          chain.senderInfo(address),
          chain.lastInitializedRound(),
        ]);
        last = { senderInfo, lastInitializedRound, at: Date.now() };
      } catch (err) {
        // Typed, so that callers see the gateway's own account at fault, not the orchestrator.
        if (!last) throw asDepositReadError(err);
        logger.warn(
          { err: (err as Error).message },
          'reading the TicketBroker deposit failed; using the last answer',
        );
      } finally {
        inflight = undefined;
      }
    })());
  return async () => {
    if (!last || Date.now() - last.at >= maxAgeMs) await refresh();
    if (!last) throw asDepositReadError(undefined);
    return { senderInfo: last.senderInfo, lastInitializedRound: last.lastInitializedRound };
  };
}

function asDepositReadError(err: unknown): ChainError {
  if (err instanceof ChainError) return err;
  const why = err instanceof Error ? `: ${err.message}` : '';
  return new ChainError('unreachable', `the TicketBroker deposit could not be read${why}`, { cause: err });
}

/** What `lp-gateway start` needs on chain: the account, its identity, discovery and live payments. */
export interface OnChainGateway {
  chain: LivepeerChain;
  identity: GatewayIdentity;
  source: OnChainSource;
  payments: LivePaymentsOptions;
  /** For the start banner: the address, deposit and reserve, and a warning when either is 0. */
  bannerLines: string[];
  close(): Promise<void>;
}

/** How long a read of the deposit, reserve and round serves the checks before paying. */
const SENDER_STATE_MAX_AGE_MS = 10_000;
/** How often the cached L1 block number is read again. */
const L1_BLOCK_REFRESH_MS = 15_000;

export async function setupOnChain(
  config: Config,
  overrides: ChainOverrides,
  logger: Logger,
): Promise<OnChainGateway> {
  // Tickets are signed in worker threads, off the media event loop (signing-pool.ts).
  let signer: SigningPool | undefined;
  const account = await loadConfiguredAccount(config, (key) => {
    signer = new SigningPool(key);
  });
  if (!signer) throw new Error('the keystore gave no key');
  const pool = signer;
  let chain: LivepeerChain;
  try {
    chain = await connectConfiguredChain(config, overrides, logger);
  } catch (err) {
    await pool.close();
    throw err;
  }
  try {
    const info = await chain.senderInfo(account.address);
    const lastSeenL1Block = await cachedL1Block(chain, L1_BLOCK_REFRESH_MS, logger);
    const bannerLines = [
      `  account:          ${account.address} (chain ${chain.chainId})`,
      `  TicketBroker:     deposit ${formatEther(info.deposit)} ETH, reserve ${formatEther(info.reserve)} ETH`,
    ];
    const empty = [info.deposit === 0n && 'deposit', info.reserve === 0n && 'reserve'].filter(Boolean);
    if (empty.length > 0) {
      bannerLines.push(
        `  warning: the TicketBroker ${empty.join(' and ')} ${empty.length > 1 ? 'are' : 'is'} 0; orchestrators will refuse payments (fund with lp-gateway deposit)`,
      );
    }
    return {
      chain,
      identity: accountIdentity(account, pool),
      source: new OnChainSource({ chain, logger }),
      payments: {
        account,
        signer: pool,
        maxTicketEV: config.maxTicketEV,
        maxTotalEV: config.maxTotalEV,
        intervalMs: config.livePaymentInterval,
        lastSeenL1Block,
        senderState: cachedSenderState(chain, account.address, SENDER_STATE_MAX_AGE_MS, logger),
        depositMultiplier: config.depositMultiplier,
      },
      bannerLines,
      close: async () => {
        lastSeenL1Block.stop();
        await pool.close();
        await chain.close();
      },
    };
  } catch (err) {
    await pool.close();
    await chain.close();
    throw err;
  }
}
