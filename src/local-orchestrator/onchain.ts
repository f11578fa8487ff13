// The local orchestrator's view of the chain when it takes tickets (on-chain mode): the L1 block
// its ticket params expire by, and the last initialised round and its block hash that tickets
// carry as expiration params. Read in the background so GetOrchestrator never waits on the RPC.
import type { Logger } from 'pino';
import type { Hex } from 'viem';
import type { LivepeerChain } from '../payments/chain.ts';
import type { LocalOrchestratorPayments, RoundInfo } from './recipient.ts';

export interface ChainClock {
  l1Block: () => bigint;
  round: () => RoundInfo;
  stop(): void;
}

/** Reads the chain now, then every `intervalMs`; a failed read keeps the last answer and is logged. */
export async function chainClock(
  chain: Pick<LivepeerChain, 'l1BlockNumber' | 'lastInitializedRound' | 'blockHashForRound'>,
  intervalMs: number,
  logger: Logger,
): Promise<ChainClock> {
  let l1 = 0n;
  let round: RoundInfo = { number: 0n, blockHash: `0x${'00'.repeat(32)}` as Hex };
  const read = async () => {
    const [block, number] = await Promise.all([chain.l1BlockNumber(), chain.lastInitializedRound()]);
    const blockHash = await chain.blockHashForRound(number);
    l1 = block;
    round = { number, blockHash };
  };
  await read(); // the first read must work: params without a round would be refused anyway
  const timer = setInterval(
    () =>
      void read().catch((err: Error) =>
        logger.warn(
          { err: err.message },
          'local orchestrator: reading the chain failed; keeping the last block',
        ),
      ),
    intervalMs,
  );
  timer.unref();
  return { l1Block: () => l1, round: () => round, stop: () => clearInterval(timer) };
}

/** `payments` for LocalOrchestrator.start backed by the chain's clock. */
export function onChainPayments(
  clock: ChainClock,
  opts: Omit<LocalOrchestratorPayments, 'l1Block' | 'round'>,
): LocalOrchestratorPayments {
  return { ...opts, l1Block: clock.l1Block, round: clock.round };
}
