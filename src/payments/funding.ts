// Funding the gateway's TicketBroker deposit and reserve (spec livepeer-pm.md §5.3), and reading
// where the account stands. Payments are in ETH: fundDepositAndReserve must carry exactly
// deposit + reserve as msg.value.
import {
  type Address,
  createWalletClient,
  decodeErrorResult,
  encodeFunctionData,
  formatEther,
  type Hex,
  type LocalAccount,
} from 'viem';
import { ChainError, type LivepeerChain, redactUrl, ticketBrokerAbi } from './chain.ts';

export interface AccountBalance {
  address: Address;
  deposit: bigint;
  reserve: bigint;
  /** 0 when no unlock is in progress. */
  withdrawRound: bigint;
  /** ETH the account holds (for gas and further funding). */
  eth: bigint;
}

export interface FundingResult {
  txHash: Hex;
  /** Gas used × effective gas price, in wei. */
  fee: bigint;
  /** The account after the transaction was mined. */
  balance: AccountBalance;
}

export interface FundOptions {
  /** msg.value; default deposit + reserve (any other value makes the contract revert). */
  value?: bigint;
  /** How long to wait for the transaction to be mined; default 120 s. */
  timeoutMs?: number;
}

function reason(err: unknown): string {
  const e = err as { shortMessage?: string; message?: string; details?: string };
  const text = e.shortMessage ?? e.message ?? String(err);
  return text.split('\n')[0]!.trim();
}

function revertReason(err: unknown): string | undefined {
  let e = err as { name?: string; reason?: string; data?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 8; depth++) {
    if (e.name === 'ContractFunctionRevertedError' && e.reason) return e.reason;
    // Nodes differ in the error code they use for a revert (ganache: -32602), but the revert
    // data (Error(string) = 0x08c379a0…) is the same.
    if (typeof e.data === 'string' && e.data.startsWith('0x08c379a0')) {
      try {
        const decoded = decodeErrorResult({ abi: [], data: e.data as Hex });
        return String(decoded.args?.[0] ?? '');
      } catch {
        // not decodable; keep looking
      }
    }
    e = e.cause as typeof e;
  }
  return undefined;
}

function isInsufficientFunds(err: unknown): boolean {
  let e = err as { name?: string; message?: string; details?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 8; depth++) {
    if (e.name === 'InsufficientFundsError') return true;
    if (/insufficient funds|enough funds/i.test(`${e.details ?? ''} ${e.message ?? ''}`)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/** Deposit, reserve, withdrawRound (fresh, not cached) and the ETH balance of an address. */
export async function balance(chain: LivepeerChain, address: Address): Promise<AccountBalance> {
  chain.invalidateSenderInfo(address);
  const [info, eth] = await Promise.all([chain.senderInfo(address), chain.ethBalance(address)]);
  return { address, deposit: info.deposit, reserve: info.reserve, withdrawRound: info.withdrawRound, eth };
}

/**
 * Sends TicketBroker.fundDepositAndReserve(deposit, reserve) with msg.value = deposit + reserve and
 * waits for it. Rejects with a one-line ChainError: `insufficient-funds` (the account cannot pay
 * the value plus gas), `reverted` (with the contract's reason), or `unreachable`.
 */
export async function fundDepositAndReserve(
  chain: LivepeerChain,
  account: LocalAccount,
  deposit: bigint,
  reserve: bigint,
  opts: FundOptions = {},
): Promise<FundingResult> {
  if (deposit < 0n || reserve < 0n) throw new RangeError('deposit and reserve must not be negative');
  const value = opts.value ?? deposit + reserve;
  const to = chain.addresses.ticketBroker;
  const data = encodeFunctionData({
    abi: ticketBrokerAbi,
    functionName: 'fundDepositAndReserve',
    args: [deposit, reserve],
  });
  const eth = await chain.ethBalance(account.address);
  if (eth < value) {
    throw new ChainError(
      'insufficient-funds',
      `insufficient funds: ${account.address} has ${formatEther(eth)} ETH, funding needs ${formatEther(value)} ETH plus gas`,
    );
  }
  // Simulate first: a revert comes back with the contract's reason, before any gas is spent.
  let gas: bigint;
  try {
    await chain.client.simulateContract({
      account: account.address,
      address: to,
      abi: ticketBrokerAbi,
      functionName: 'fundDepositAndReserve',
      args: [deposit, reserve],
      value,
    });
    gas = await chain.client.estimateGas({ account: account.address, to, data, value });
  } catch (err) {
    throw classify(err, chain, account.address, value);
  }
  let fees: bigint;
  try {
    fees = (await chain.client.getGasPrice()) * gas;
  } catch (err) {
    throw classify(err, chain, account.address, value);
  }
  if (eth < value + fees) {
    throw new ChainError(
      'insufficient-funds',
      `insufficient funds: ${account.address} has ${formatEther(eth)} ETH, funding needs ${formatEther(value)} ETH plus about ${formatEther(fees)} ETH gas`,
    );
  }
  const wallet = createWalletClient({ account, chain: chain.chain, transport: chain.transport });
  let txHash: Hex;
  try {
    txHash = await wallet.sendTransaction({ account, chain: chain.chain, to, data, value, gas });
  } catch (err) {
    throw classify(err, chain, account.address, value);
  }
  let receipt: Awaited<ReturnType<LivepeerChain['client']['waitForTransactionReceipt']>>;
  try {
    receipt = await chain.client.waitForTransactionReceipt({
      hash: txHash,
      timeout: opts.timeoutMs ?? 120_000,
      pollingInterval: 250,
    });
  } catch (err) {
    throw new ChainError('unreachable', `funding transaction ${txHash} not mined: ${reason(err)}`, {
      cause: err,
    });
  }
  if (receipt.status !== 'success') {
    throw new ChainError('reverted', `funding transaction ${txHash} reverted`);
  }
  return {
    txHash,
    fee: receipt.gasUsed * receipt.effectiveGasPrice,
    balance: await balance(chain, account.address),
  };
}

function classify(err: unknown, chain: LivepeerChain, address: Address, value: bigint): ChainError {
  if (err instanceof ChainError) return err;
  if (isInsufficientFunds(err)) {
    return new ChainError(
      'insufficient-funds',
      `insufficient funds: ${address} cannot pay ${formatEther(value)} ETH plus gas`,
      { cause: err },
    );
  }
  const revert = revertReason(err) ?? matchRevert(err);
  if (revert !== undefined) {
    return new ChainError('reverted', `TicketBroker.fundDepositAndReserve reverted: ${revert}`, {
      cause: err,
    });
  }
  const name = (err as { name?: string }).name ?? '';
  if (/HttpRequestError|WebSocketRequestError|SocketClosedError|TimeoutError/.test(name)) {
    return new ChainError(
      'unreachable',
      `Ethereum RPC ${redactUrl(chain.ethUrl)} is unreachable: ${reason(err)}`,
      {
        cause: err,
      },
    );
  }
  return new ChainError('call-failed', `funding failed: ${reason(err)}`, { cause: err });
}

/** viem's call() error wraps the node's text: "Execution reverted with reason: …". */
function matchRevert(err: unknown): string | undefined {
  let e = err as
    | { name?: string; message?: string; details?: string; reason?: string; cause?: unknown }
    | undefined;
  for (let depth = 0; e && depth < 8; depth++) {
    if (e.name === 'ExecutionRevertedError') {
      const m = /reverted with reason string '([^']*)'|reason: (.*)/.exec(
        `${e.details ?? ''}\n${e.message ?? ''}`,
      );
      return (m?.[1] ?? m?.[2] ?? e.details ?? 'execution reverted').split('\n')[0]!.trim();
    }
    e = e.cause as typeof e;
  }
  return undefined;
}
