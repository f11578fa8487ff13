// Livepeer's contracts on Arbitrum One, read with viem (spec livepeer-pm.md §5): the gateway's
// deposit and reserve at the TicketBroker, rounds and the L1 block from the RoundsManager, and the
// transcoder pool (stake from the BondingManager, service URIs from the AI ServiceRegistry).
// Contract addresses are resolved at run time through the Controller, as go-livepeer does.
import type { Logger } from 'pino';
import {
  type Address,
  type Chain,
  defineChain,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  parseAbi,
  stringToBytes,
  type Transport,
  createPublicClient as viemPublicClient,
  webSocket,
  zeroAddress,
} from 'viem';
import type { SenderInfo } from './sender.ts';

export const ARBITRUM_ONE_CHAIN_ID = 42161;
/** Arbitrum One Controller (go-livepeer's default for `-network arbitrum-one-mainnet`). */
export const ARBITRUM_ONE_CONTROLLER: Address = '0xD8E8328501E9645d16Cf49539efC04f734606ee4';
/** Arbitrum One AI ServiceRegistry ("detached from controller"): AI orchestrators publish their URI here. */
export const ARBITRUM_ONE_AI_SERVICE_REGISTRY: Address = '0x04C0b249740175999E5BF5c9ac1dA92431EF34C5';

export const controllerAbi = parseAbi(['function getContract(bytes32 _id) view returns (address)']);

export const ticketBrokerAbi = parseAbi([
  'function fundDeposit() payable',
  'function fundReserve() payable',
  'function fundDepositAndReserve(uint256 _depositAmount, uint256 _reserveAmount) payable',
  'function getSenderInfo(address _sender) view returns ((uint256 deposit, uint256 withdrawRound) sender, (uint256 fundsRemaining, uint256 claimedInCurrentRound) reserve)',
  'function unlock()',
  'function cancelUnlock()',
  'function withdraw()',
  'function isUnlockInProgress(address _sender) view returns (bool)',
  'function unlockPeriod() view returns (uint256)',
  'function ticketValidityPeriod() view returns (uint256)',
]);

export const roundsManagerAbi = parseAbi([
  'function currentRound() view returns (uint256)',
  'function lastInitializedRound() view returns (uint256)',
  'function blockHashForRound(uint256 _round) view returns (bytes32)',
  'function currentRoundInitialized() view returns (bool)',
  'function roundLength() view returns (uint256)',
  'function blockNum() view returns (uint256)',
]);

export const bondingManagerAbi = parseAbi([
  'function getFirstTranscoderInPool() view returns (address)',
  'function getNextTranscoderInPool(address _transcoder) view returns (address)',
  'function transcoderTotalStake(address _transcoder) view returns (uint256)',
  'function getTranscoderPoolSize() view returns (uint256)',
  'function isActiveTranscoder(address _transcoder) view returns (bool)',
]);

export const serviceRegistryAbi = parseAbi(['function getServiceURI(address _addr) view returns (string)']);

/** The Controller names this module resolves. */
export const CONTRACT_NAMES = ['TicketBroker', 'BondingManager', 'RoundsManager'] as const;
export type ContractName = (typeof CONTRACT_NAMES)[number];

/** keccak256(utf8(name)): the Controller's id for a contract name. */
export function contractId(name: string): Hex {
  return keccak256(stringToBytes(name));
}

export type ChainErrorCode =
  | 'unreachable'
  | 'wrong-chain'
  | 'missing-contract'
  | 'call-failed'
  | 'insufficient-funds'
  | 'reverted';

/** A one-line reason a chain read or transaction failed. */
export class ChainError extends Error {
  constructor(
    readonly code: ChainErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ChainError';
  }
}

export interface SenderInfoWithReserve extends SenderInfo {
  /** reserve.claimedInCurrentRound */
  claimedInCurrentRound: bigint;
}

export interface PoolTranscoder {
  address: Address;
  /** transcoderTotalStake, in LPT wei. */
  stake: bigint;
  /** From the AI ServiceRegistry; '' when none is published. */
  serviceUri: string;
  active: boolean;
}

export interface LivepeerChainOptions {
  /** http(s):// or ws(s):// JSON-RPC endpoint of an Arbitrum One node. */
  ethUrl: string;
  /** Controller address; default Arbitrum One's. */
  controller?: Address;
  /** Refuse any other chain; default 42161 (Arbitrum One). */
  expectedChainId?: number;
  /** The AI ServiceRegistry (detached from the Controller); default Arbitrum One's. */
  aiServiceRegistry?: Address;
  /** How long senderInfo() answers from cache; default 2000 ms, 0 disables. */
  senderInfoCacheMs?: number;
  /** Per-orchestrator reads in flight during transcoderPool(); default 8. */
  poolConcurrency?: number;
  /** Per-request timeout; default 10 000 ms. */
  timeoutMs?: number;
  logger?: Logger;
}

export interface LivepeerAddresses {
  controller: Address;
  ticketBroker: Address;
  bondingManager: Address;
  roundsManager: Address;
  aiServiceRegistry: Address;
}

/** The URL without credentials: scheme and host, and `/…` when it has a path (often an API key). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname && u.pathname !== '/' ? '/…' : '';
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return '(invalid URL)';
  }
}

/** The innermost useful reason in an error's cause chain (a code like ECONNREFUSED, else a message). */
function rootReason(err: unknown): string {
  let e = err as { cause?: unknown; code?: unknown; shortMessage?: string; message?: string } | undefined;
  let best = '';
  for (let depth = 0; e && depth < 8; depth++) {
    if (typeof e.code === 'string') return e.code;
    const msg = e.shortMessage ?? e.message;
    if (msg) best = msg;
    e = e.cause as typeof e;
  }
  return oneLine(best || String(err));
}

function oneLine(s: string): string {
  const first = s.split('\n')[0]!.trim();
  return first.length > 200 ? `${first.slice(0, 200)}…` : first;
}

function isTransportError(err: unknown): boolean {
  let e = err as { name?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 8; depth++) {
    if (
      e.name === 'HttpRequestError' ||
      e.name === 'WebSocketRequestError' ||
      e.name === 'SocketClosedError' ||
      e.name === 'TimeoutError'
    ) {
      return true;
    }
    e = e.cause as typeof e;
  }
  return false;
}

export function makeTransport(ethUrl: string, timeoutMs: number): Transport {
  let protocol: string;
  try {
    protocol = new URL(ethUrl).protocol;
  } catch {
    throw new ChainError('unreachable', `ethUrl ${JSON.stringify(ethUrl)} is not a URL`);
  }
  if (protocol === 'http:' || protocol === 'https:') {
    return http(ethUrl, { timeout: timeoutMs, retryCount: 1, retryDelay: 100 });
  }
  if (protocol === 'ws:' || protocol === 'wss:') {
    return webSocket(ethUrl, { timeout: timeoutMs, retryCount: 1, retryDelay: 100 });
  }
  throw new ChainError('unreachable', `ethUrl must be http(s):// or ws(s)://, got ${protocol}//`);
}

/** Chain reads for the gateway. Create with `LivepeerChain.connect()`. */
export class LivepeerChain {
  private readonly senderCache = new Map<string, { at: number; value: Promise<SenderInfoWithReserve> }>();
  private readonly senderInfoCacheMs: number;
  private readonly poolConcurrency: number;

  private constructor(
    readonly client: PublicClient,
    readonly transport: Transport,
    readonly chain: Chain,
    readonly addresses: LivepeerAddresses,
    readonly ethUrl: string,
    opts: LivepeerChainOptions,
  ) {
    this.senderInfoCacheMs = opts.senderInfoCacheMs ?? 2000;
    this.poolConcurrency = Math.max(1, opts.poolConcurrency ?? 8);
  }

  /** Closes a ws(s):// connection; nothing to do for http(s). */
  async close(): Promise<void> {
    await closeTransport(this.client);
  }

  get chainId(): number {
    return this.chain.id;
  }

  /**
   * Connects, checks the chain id, and resolves TicketBroker, BondingManager and RoundsManager
   * through the Controller. Rejects with a ChainError: `unreachable`, `wrong-chain`, or
   * `missing-contract` (no code at the Controller or AI ServiceRegistry, or a name not registered).
   */
  static async connect(opts: LivepeerChainOptions): Promise<LivepeerChain> {
    const transport = makeTransport(opts.ethUrl, opts.timeoutMs ?? 10_000);
    const probe = viemPublicClient({ transport });
    try {
      return await LivepeerChain.open(opts, transport, probe);
    } catch (err) {
      await closeTransport(probe);
      throw err;
    }
  }

  private static async open(
    opts: LivepeerChainOptions,
    transport: Transport,
    probe: { getChainId(): Promise<number> },
  ): Promise<LivepeerChain> {
    const shown = redactUrl(opts.ethUrl);
    let chainId: number;
    try {
      chainId = await probe.getChainId();
    } catch (err) {
      throw new ChainError('unreachable', `Ethereum RPC ${shown} is unreachable: ${rootReason(err)}`, {
        cause: err,
      });
    }
    const expected = opts.expectedChainId ?? ARBITRUM_ONE_CHAIN_ID;
    if (chainId !== expected) {
      throw new ChainError(
        'wrong-chain',
        `Ethereum RPC ${shown} serves chain id ${chainId}, expected ${expected}${expected === ARBITRUM_ONE_CHAIN_ID ? ' (Arbitrum One)' : ''}`,
      );
    }
    const chain = defineChain({
      id: chainId,
      name: chainId === ARBITRUM_ONE_CHAIN_ID ? 'Arbitrum One' : `chain ${chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [opts.ethUrl] } },
    });
    const client = viemPublicClient({ chain, transport }) as PublicClient;
    const controller = opts.controller ?? ARBITRUM_ONE_CONTROLLER;
    const aiServiceRegistry = opts.aiServiceRegistry ?? ARBITRUM_ONE_AI_SERVICE_REGISTRY;
    const requireCode = async (address: Address, what: string) => {
      let code: Hex | undefined;
      try {
        code = await client.getCode({ address });
      } catch (err) {
        throw new ChainError('unreachable', `Ethereum RPC ${shown} failed: ${rootReason(err)}`, {
          cause: err,
        });
      }
      if (!code || code === '0x') {
        throw new ChainError('missing-contract', `no ${what} contract at ${address} on chain ${chainId}`);
      }
    };
    await requireCode(controller, 'Controller');
    await requireCode(aiServiceRegistry, 'AI ServiceRegistry');
    const resolved = {} as Record<ContractName, Address>;
    for (const name of CONTRACT_NAMES) {
      let address: Address;
      try {
        address = await client.readContract({
          address: controller,
          abi: controllerAbi,
          functionName: 'getContract',
          args: [contractId(name)],
        });
      } catch (err) {
        throw new ChainError(
          isTransportError(err) ? 'unreachable' : 'call-failed',
          `Controller ${controller} getContract(${name}) failed: ${rootReason(err)}`,
          { cause: err },
        );
      }
      if (address === zeroAddress) {
        throw new ChainError(
          'missing-contract',
          `Controller ${controller} on chain ${chainId} has no ${name} (getContract returned 0x0)`,
        );
      }
      resolved[name] = address;
    }
    const addresses: LivepeerAddresses = {
      controller,
      ticketBroker: resolved.TicketBroker,
      bondingManager: resolved.BondingManager,
      roundsManager: resolved.RoundsManager,
      aiServiceRegistry,
    };
    opts.logger?.info({ ethUrl: shown, chainId, ...addresses }, 'connected to the Livepeer contracts');
    return new LivepeerChain(client, transport, chain, addresses, opts.ethUrl, opts);
  }

  /** Runs a read, turning failures into a one-line ChainError naming the call. */
  private async read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ChainError) throw err;
      if (isTransportError(err)) {
        throw new ChainError(
          'unreachable',
          `Ethereum RPC ${redactUrl(this.ethUrl)} is unreachable (${what}): ${rootReason(err)}`,
          { cause: err },
        );
      }
      throw new ChainError('call-failed', `${what} failed: ${rootReason(err)}`, { cause: err });
    }
  }

  /** TicketBroker.getSenderInfo, cached for senderInfoCacheMs (failures are not cached). */
  senderInfo(address: Address): Promise<SenderInfoWithReserve> {
    const key = address.toLowerCase();
    const now = Date.now();
    const hit = this.senderCache.get(key);
    if (hit && now - hit.at < this.senderInfoCacheMs) return hit.value;
    const value = this.read(`TicketBroker.getSenderInfo(${address})`, async () => {
      const [sender, reserve] = await this.client.readContract({
        address: this.addresses.ticketBroker,
        abi: ticketBrokerAbi,
        functionName: 'getSenderInfo',
        args: [address],
      });
      return {
        deposit: sender.deposit,
        withdrawRound: sender.withdrawRound,
        reserve: reserve.fundsRemaining,
        claimedInCurrentRound: reserve.claimedInCurrentRound,
      };
    });
    if (this.senderInfoCacheMs > 0) {
      this.senderCache.set(key, { at: now, value });
      value.catch(() => {
        if (this.senderCache.get(key)?.value === value) this.senderCache.delete(key);
      });
    }
    return value;
  }

  /** Forget cached senderInfo (after funding, say); all addresses when none is given. */
  invalidateSenderInfo(address?: Address): void {
    if (address) this.senderCache.delete(address.toLowerCase());
    else this.senderCache.clear();
  }

  /** The Ethereum L1 block number: RoundsManager.blockNum() (block.number on Arbitrum is L1's). */
  l1BlockNumber(): Promise<bigint> {
    return this.read('RoundsManager.blockNum()', () =>
      this.client.readContract({
        address: this.addresses.roundsManager,
        abi: roundsManagerAbi,
        functionName: 'blockNum',
      }),
    );
  }

  lastInitializedRound(): Promise<bigint> {
    return this.read('RoundsManager.lastInitializedRound()', () =>
      this.client.readContract({
        address: this.addresses.roundsManager,
        abi: roundsManagerAbi,
        functionName: 'lastInitializedRound',
      }),
    );
  }

  currentRound(): Promise<bigint> {
    return this.read('RoundsManager.currentRound()', () =>
      this.client.readContract({
        address: this.addresses.roundsManager,
        abi: roundsManagerAbi,
        functionName: 'currentRound',
      }),
    );
  }

  blockHashForRound(round: bigint): Promise<Hex> {
    return this.read(`RoundsManager.blockHashForRound(${round})`, () =>
      this.client.readContract({
        address: this.addresses.roundsManager,
        abi: roundsManagerAbi,
        functionName: 'blockHashForRound',
        args: [round],
      }),
    );
  }

  ethBalance(address: Address): Promise<bigint> {
    return this.read(`eth_getBalance(${address})`, () => this.client.getBalance({ address }));
  }

  /**
   * The BondingManager's transcoder pool in list order: walk getFirstTranscoderInPool /
   * getNextTranscoderInPool until 0x0, then read each one's stake, active flag and AI service URI
   * with at most poolConcurrency of them in flight.
   */
  async transcoderPool(): Promise<PoolTranscoder[]> {
    const bm = this.addresses.bondingManager;
    const list: Address[] = [];
    const seen = new Set<string>();
    let next = await this.read('BondingManager.getFirstTranscoderInPool()', () =>
      this.client.readContract({
        address: bm,
        abi: bondingManagerAbi,
        functionName: 'getFirstTranscoderInPool',
      }),
    );
    while (next !== zeroAddress) {
      const key = next.toLowerCase();
      if (seen.has(key))
        throw new ChainError('call-failed', `BondingManager transcoder pool loops at ${next}`);
      if (list.length >= 10_000)
        throw new ChainError('call-failed', 'BondingManager transcoder pool is too long');
      seen.add(key);
      list.push(next);
      const current = next;
      next = await this.read(`BondingManager.getNextTranscoderInPool(${current})`, () =>
        this.client.readContract({
          address: bm,
          abi: bondingManagerAbi,
          functionName: 'getNextTranscoderInPool',
          args: [current],
        }),
      );
    }
    return mapLimit(list, this.poolConcurrency, (address) => this.transcoderInfo(address));
  }

  private async transcoderInfo(address: Address): Promise<PoolTranscoder> {
    const bm = this.addresses.bondingManager;
    const [stake, active, serviceUri] = await Promise.all([
      this.read(`BondingManager.transcoderTotalStake(${address})`, () =>
        this.client.readContract({
          address: bm,
          abi: bondingManagerAbi,
          functionName: 'transcoderTotalStake',
          args: [address],
        }),
      ),
      this.read(`BondingManager.isActiveTranscoder(${address})`, () =>
        this.client.readContract({
          address: bm,
          abi: bondingManagerAbi,
          functionName: 'isActiveTranscoder',
          args: [address],
        }),
      ),
      this.read(`ServiceRegistry.getServiceURI(${address})`, () =>
        this.client.readContract({
          address: this.addresses.aiServiceRegistry,
          abi: serviceRegistryAbi,
          functionName: 'getServiceURI',
          args: [address],
        }),
      ),
    ]);
    return { address, stake, active, serviceUri };
  }
}

async function closeTransport(client: { transport: { type: string } }): Promise<void> {
  const t = client.transport as { type: string; getRpcClient?: () => Promise<{ close(): void }> };
  if (t.type !== 'webSocket' || !t.getRpcClient) return;
  try {
    (await t.getRpcClient()).close();
  } catch {
    // never connected
  }
}

/** Maps items with at most `limit` calls of fn in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const idx = i++;
      out[idx] = await fn(items[idx]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
