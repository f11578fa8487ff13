// The chain side shared by the on-chain integration tests: the project's chain (ganache with our
// contract doubles) at a fixed round, the test sender's deposit and reserve funded, and a local
// orchestrator that checks tickets against that chain and is registered on it with its URL.
import type { Logger } from 'pino';
import { type Hex, parseEther } from 'viem';
import { type ChainClock, chainClock, onChainPayments } from '../../src/local-orchestrator/onchain.ts';
import type { WinningTicket } from '../../src/local-orchestrator/recipient.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { LivepeerChain } from '../../src/payments/chain.ts';
import { auxData } from '../../src/payments/ticket.ts';
import { type LocalChain, startLocalChain } from './local-chain.ts';

// 1 wei per pixel; one ticket (EV) pays one second of 720p30; face value 2 × EV: half the tickets win.
export const EV = 27_648_000n;
export const FACE_VALUE = EV * 2n;
export const ROUND = 10n;
export const ROUND_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';
export const L1_BLOCK = 5000n;

export interface OnChainWorld {
  lc: LocalChain;
  /** The orchestrator's own view of the chain (sender deposits, rounds). */
  orchChain: LivepeerChain;
  orch: LocalOrchestrator;
  close(): Promise<void>;
}

/** accounts[0] is the funded sender (TEST_SENDER_KEY), accounts[1] the orchestrator. */
export async function startOnChainWorld(logger: Logger, { capacity = 2 } = {}): Promise<OnChainWorld> {
  const lc = await startLocalChain();
  let orchChain: LivepeerChain | undefined;
  let clock: ChainClock | undefined;
  let orch: LocalOrchestrator | undefined;
  const close = async () => {
    await orch?.close();
    clock?.stop();
    await orchChain?.close();
    await lc.close();
  };
  try {
    const [sender, orchAccount] = [lc.accounts[0]!, lc.accounts[1]!];
    await lc.send(sender, 'RoundsManager', 'setRounds', [ROUND, ROUND]);
    await lc.send(sender, 'RoundsManager', 'setBlockHashForRound', [ROUND, ROUND_HASH]);
    await lc.send(sender, 'RoundsManager', 'setBlockNum', [L1_BLOCK]);
    await lc.send(sender, 'TicketBroker', 'setCurrentRound', [ROUND]);
    const deposit = parseEther('1');
    await lc.send(sender, 'TicketBroker', 'fundDepositAndReserve', [deposit, deposit], deposit * 2n);

    orchChain = await LivepeerChain.connect({
      ethUrl: lc.url,
      controller: lc.controller,
      expectedChainId: lc.chainId,
      aiServiceRegistry: lc.addresses.ServiceRegistry,
    });
    clock = await chainClock(orchChain, 300, logger);
    orch = await LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models: ['passthrough'],
      pricePerUnit: 1n,
      pixelsPerUnit: 1n,
      capacity,
      logger,
      payments: onChainPayments(clock, {
        recipient: orchAccount.address,
        ticketEV: EV,
        faceValue: FACE_VALUE,
        accountingIntervalMs: 1000,
      }),
    });
    await lc.send(sender, 'BondingManager', 'setTranscoder', [orchAccount.address, 1000n, true]);
    await lc.send(orchAccount, 'ServiceRegistry', 'setServiceURI', [orch.url]);
    return { lc, orchChain, orch, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

/** The orchestrator redeems a winning ticket on the TicketBroker, which checks it in full. */
export function redeemOnChain(world: OnChainWorld, w: WinningTicket): Promise<unknown> {
  return world.lc.send(world.lc.accounts[1]!, 'TicketBroker', 'redeemWinningTicket', [
    {
      recipient: w.ticket.recipient,
      sender: w.ticket.sender,
      faceValue: w.ticket.faceValue,
      winProb: w.ticket.winProb,
      senderNonce: BigInt(w.ticket.senderNonce),
      recipientRandHash: w.ticket.recipientRandHash,
      auxData: auxData(w.ticket.creationRound, w.ticket.creationRoundBlockHash),
    },
    w.sig,
    w.recipientRand,
  ]);
}
