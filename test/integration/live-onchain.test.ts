// A whole live stream paid with tickets, the chain in the loop: ganache with our contract doubles,
// the gateway set up for on-chain mode as `lp-gateway start` does (keystore account, on-chain
// discovery, TicketBroker and round reads), and the local orchestrator taking tickets against the
// chain's L1 block and round. At the end the orchestrator redeems its winning tickets on the
// TicketBroker, which checks each one (hash, signature, recipientRand, win) and pays from the
// sender's deposit: the tickets the gateway signed are good on chain, not only to our own checks.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type OnChainGateway, setupOnChain } from '../../src/payments/onchain-setup.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { type LocalChain, TEST_SENDER_KEY } from '../helpers/local-chain.ts';
import { makeH264Clip } from '../helpers/media.ts';
import {
  EV,
  FACE_VALUE,
  L1_BLOCK,
  type OnChainWorld,
  redeemOnChain,
  startOnChainWorld,
} from '../helpers/onchain-world.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const PASSWORD = 'on-chain test';

let world: OnChainWorld;
let lc: LocalChain;
let orch: LocalOrchestrator;
let onchain: OnChainGateway;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  world = await startOnChainWorld(logger);
  ({ lc, orch } = world);

  // The gateway, set up from flags as `lp-gateway start -network arbitrum-one-mainnet` is.
  const dir = mkdtempSync(join(tmpdir(), 'lp-live-onchain-'));
  const keyFile = join(dir, 'sender.json');
  writeFileSync(keyFile, JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PASSWORD, { n: 1024 })));
  const config = loadConfig({
    argv: [
      ...['-network', 'arbitrum-one-mainnet', '-ethUrl', lc.url, '-ethController', lc.controller],
      ...['-ethKeystorePath', keyFile, '-ethPassword', PASSWORD, '-livePaymentInterval', '1s'],
    ],
    env: {},
  });
  onchain = await setupOnChain(
    config,
    { chainId: String(lc.chainId), aiServiceRegistry: lc.addresses.ServiceRegistry },
    logger,
  );
  gw = await startTestGateway({
    orchestrators: [],
    sources: [onchain.source],
    identity: onchain.identity,
    payments: onchain.payments,
    logger,
    defaultModel: 'passthrough',
  });
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await gw?.close();
  await onchain?.close();
  await world?.close();
});

describe('a live stream paid on chain', () => {
  it('is paid with tickets from start to end, survives expired params, and its winning tickets redeem on chain', async () => {
    const sender = lc.accounts[0]!;
    expect(onchain.identity.address.toLowerCase()).toBe(sender.address.toLowerCase());
    // Long enough for every payment below on a loaded machine: payments need input segments.
    const clip = await makeH264Clip({ seconds: 30 });
    const publisher = await WhipTestPublisher.connect(gw.url('chain', 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(gw.url('chain', 'whep'));
    cleanups.push(() => viewer.close());
    const stop = new AbortController();
    const sending = publisher.send({ video: h264Frames(clip, 30), signal: stop.signal });

    await waitFor(() => viewer.frames.length > 30, 'frames through the on-chain orchestrator', 15_000);
    const started = await gw.status('chain');
    expect(started.orchestrator).toBe(orch.url);
    const mid = started.manifestId as string;
    const tickets = async () => (await gw.status('chain')).payments[0]?.tickets ?? 0;
    await waitFor(async () => (await tickets()) > 61, 'a payment after the start', 10_000);

    // The chain's L1 block moves past every ticket params handed out so far.
    await lc.send(sender, 'RoundsManager', 'setBlockNum', [L1_BLOCK + 100n]);
    const before = await tickets();
    await waitFor(async () => (await tickets()) > before + 1, 'payments with fresh params', 15_000);
    stop.abort();
    await sending;

    const status = await gw.status('chain');
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(0);
    expect(status.payments).toHaveLength(1);
    expect(status.payments[0]).toMatchObject({ orchestrator: orch.url, lastError: null });
    expect(BigInt(status.payments[0].paidEV)).toBe(EV * BigInt(status.payments[0].tickets));
    // The job ran to the end on the orchestrator: its balance never ran out.
    expect(orch.jobs.has(mid)).toBe(true);

    const won = orch.recipient!.winningTickets.filter((w) => w.manifestId === mid);
    expect(won.length).toBeGreaterThan(5);
    const depositOf = async () => (await world.orchChain.senderInfo(sender.address)).deposit;
    world.orchChain.invalidateSenderInfo();
    const depositBefore = await depositOf();
    const redeem = (w: (typeof won)[number]) => redeemOnChain(world, w);
    const some = won.slice(0, 5);
    for (const w of some) await redeem(w);
    world.orchChain.invalidateSenderInfo();
    expect(await depositOf()).toBe(depositBefore - FACE_VALUE * BigInt(some.length));
    // The contract refuses the same ticket twice.
    await expect(redeem(some[0]!)).rejects.toThrow(/ticket is used/);
  }, 60_000);
});
