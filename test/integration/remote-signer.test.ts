// A keyless gateway paying a live stream through a remote signer, each a real `lp-gateway start`
// process, on the project's chain (ganache with our contract doubles): the signer holds the
// keystore and finds the orchestrator on chain (-remoteDiscovery), the gateway has no key and no
// chain, and the local orchestrator checks every ticket against the chain and redeems its winners
// on the TicketBroker. The signer's payment webhook (a real HTTP server) allows, then refuses.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type LocalChain, TEST_SENDER_KEY } from '../helpers/local-chain.ts';
import { freePort, type LpProcess, spawnLp, untilReady } from '../helpers/lp-process.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { FACE_VALUE, type OnChainWorld, redeemOnChain, startOnChainWorld } from '../helpers/onchain-world.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const PASSWORD = 'remote signer test password';
const TOKEN = 'gateway-token-5f2a9c';
let world: OnChainWorld;
let lc: LocalChain;
let orch: LocalOrchestrator;
let hook: Server;
let chainFlags: string[];
let keyFile: string;
let signer: LpProcess;
let signerUrl: string;
let gateway: LpProcess;
let gatewayBase: string;
const hookCalls: { headers: Record<string, string[]>; state: Record<string, unknown> }[] = [];
let hookAnswer: unknown = { status: 200 };
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  world = await startOnChainWorld(logger);
  ({ lc, orch } = world);

  hook = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => {
      hookCalls.push(JSON.parse(data));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(hookAnswer));
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));

  const dir = mkdtempSync(join(tmpdir(), 'lp-remote-signer-'));
  keyFile = join(dir, 'signer.json');
  writeFileSync(keyFile, JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PASSWORD, { n: 1024 })));
  chainFlags = [
    ...['-network', 'arbitrum-one-mainnet', '-ethUrl', lc.url, '-ethController', lc.controller],
    ...['--chainId', String(lc.chainId), '--aiServiceRegistry', lc.addresses.ServiceRegistry],
  ];

  // The signer: the keystore, the chain, a bearer token, the webhook, discovery from the chain.
  const signerPort = await freePort();
  signerUrl = `http://127.0.0.1:${signerPort}`;
  signer = spawnLp([
    '-remoteSigner',
    ...chainFlags,
    ...['-ethKeystorePath', keyFile, '-ethPassword', PASSWORD],
    ...['-httpAddr', `127.0.0.1:${signerPort}`, '-remoteSignerAuthToken', TOKEN],
    ...['-remoteSignerWebhookUrl', `http://127.0.0.1:${(hook.address() as AddressInfo).port}/authorize`],
    '-remoteDiscovery',
    ...['-orchInfoMaxAge', '2s'],
  ]);
  cleanups.push(() => signer.kill());
  await untilReady(signer, 'remote signer is running');

  // The gateway: no key, no chain; its orchestrators from the signer's discovery.
  const gatewayPort = await freePort();
  gatewayBase = `http://127.0.0.1:${gatewayPort}`;
  gateway = spawnLp([
    ...['-httpAddr', `127.0.0.1:${gatewayPort}`, '-remoteSignerUrl', signerUrl],
    ...['-remoteSignerHeaders', `Authorization:Bearer ${TOKEN},X-Tenant:acme`],
    ...[
      '-liveDefaultModel',
      'passthrough',
      '-livePaymentInterval',
      '1s',
      '-orchWebhookRefreshInterval',
      '1s',
    ],
  ]);
  cleanups.push(() => gateway.kill());
  await untilReady(gateway, 'lp-gateway is running');
}, 120_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await new Promise((r) => hook?.close(r));
  await world?.close();
});

const status = async (stream: string) =>
  (await fetch(`${gatewayBase}/live/video-to-video/${stream}/status`)).json() as Promise<
    Record<string, unknown> & { payments: { tickets: number; paidEV: string; lastError: string | null }[] }
  >;

describe('a keyless gateway paying through a remote signer', () => {
  it('streams live video paid by the signer: tickets valid on chain, the webhook asked, no key on the gateway', async () => {
    const signerAddress = getAddress(lc.accounts[0]!.address);
    // The gateway asked the signer who pays, and found the orchestrator through its discovery.
    expect(gateway.stdout()).toContain(`through the remote signer ${signerUrl} (account ${signerAddress})`);
    await waitFor(
      async () => {
        const body = (await (await fetch(`${gatewayBase}/orchestrators`)).json()) as {
          orchestrators: { url: string; state: string }[];
        };
        return body.orchestrators.some((o) => o.url === orch.url && o.state === 'available');
      },
      "the orchestrator from the signer's discovery",
      20_000,
    );

    const clip = await makeH264Clip({ seconds: 30 });
    const publisher = await WhipTestPublisher.connect(
      `${gatewayBase}/live/video-to-video/signed/whip?model=passthrough`,
    );
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(`${gatewayBase}/live/video-to-video/signed/whep`);
    cleanups.push(() => viewer.close());
    const stop = new AbortController();
    const sending = publisher.send({ video: h264Frames(clip, 30), signal: stop.signal });

    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator', 20_000);
    const mid = (await status('signed')).manifestId as string;
    const tickets = async () => (await status('signed')).payments[0]?.tickets ?? 0;
    // The start's 60 s, then payments every second of input.
    await waitFor(async () => (await tickets()) > 63, 'payments after the start', 20_000);

    // Every payment went past the webhook, with the gateway's headers and the new state.
    expect(hookCalls.length).toBeGreaterThanOrEqual(3);
    const first = hookCalls[0]!;
    expect(first.headers.Authorization).toEqual([`Bearer ${TOKEN}`]);
    expect(first.headers['X-Tenant']).toEqual(['acme']);
    expect(first.state).toMatchObject({ Type: 'lv2v', SequenceNumber: 0, SenderNonce: 60 });
    expect(hookCalls.at(-1)!.state.SequenceNumber).toBeGreaterThan(0);

    const s = await status('signed');
    expect(s.state).toBe('live');
    expect(s.payments[0]).toMatchObject({ lastError: null });

    // Every ticket the orchestrator took is the signer's; the winners redeem on the TicketBroker.
    const won = orch.recipient!.winningTickets.filter((w) => w.manifestId === mid);
    expect(won.length).toBeGreaterThan(5);
    for (const w of won) expect(getAddress(w.ticket.sender)).toBe(signerAddress);
    world.orchChain.invalidateSenderInfo();
    const depositBefore = (await world.orchChain.senderInfo(signerAddress)).deposit;
    for (const w of won.slice(0, 4)) await redeemOnChain(world, w);
    world.orchChain.invalidateSenderInfo();
    expect((await world.orchChain.senderInfo(signerAddress)).deposit).toBe(depositBefore - FACE_VALUE * 4n);

    // Batch AI and transcoding are refused clearly: go-livepeer pays only live video this way.
    const batch = await fetch(`${gatewayBase}/text-to-image`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a cat' }),
    });
    expect(batch.status).toBe(503);
    expect(((await batch.json()) as { error: { code: string } }).error.code).toBe('REMOTE_SIGNER');
    expect((await fetch(`${gatewayBase}/live/t/0.ts`, { method: 'PUT', body: 'x' })).status).toBe(503);

    // The webhook stops paying: the gateway's payments fail with its reason, the stream is told.
    hookAnswer = { status: 403, reason: 'tenant acme suspended' };
    await waitFor(
      async () => /tenant acme suspended/.test((await status('signed')).payments[0]?.lastError ?? ''),
      "the webhook's refusal in the stream's status",
      15_000,
    );
    // Our own side's trouble: the stream is not moved off the orchestrator for it.
    expect((await status('signed')).swaps).toEqual([]);
    stop.abort();
    await sending;

    // The key, its password and the signer's token are nowhere on the gateway: not in its
    // arguments, its output, its status, its metrics.
    const key = TEST_SENDER_KEY.slice(2).toLowerCase();
    expect(gateway.args.join(' ')).not.toMatch(/eth(KeystorePath|Password|Url)|-network/);
    const seen = [
      gateway.stdout(),
      gateway.stderr(),
      JSON.stringify(await status('signed')),
      await (await fetch(`${gatewayBase}/metrics`)).text(),
      await (await fetch(`${gatewayBase}/orchestrators`)).text(),
    ].join('\n');
    expect(seen.toLowerCase()).not.toContain(key);
    expect(seen).not.toContain(PASSWORD);
    expect(seen).not.toContain(TOKEN);
    // Nor in the signer's own output.
    expect((signer.stdout() + signer.stderr()).toLowerCase()).not.toContain(key);
    expect(signer.stdout() + signer.stderr()).not.toContain(PASSWORD);
    expect(signer.stdout() + signer.stderr()).not.toContain(TOKEN);
  }, 120_000);

  it('a gateway with a wrong token does not start; a signer refuses a public address without auth', async () => {
    const port = await freePort();
    const wrong = spawnLp([
      ...['-httpAddr', `127.0.0.1:${port}`, '-remoteSignerUrl', signerUrl],
      ...['-remoteSignerHeaders', 'Authorization:Bearer not-the-token'],
    ]);
    expect(await wrong.exited).toBe(2);
    expect(wrong.stderr().trim()).toBe(
      'lp-gateway: cannot use the remote signer: remote signer answered 401: wrong bearer token',
    );

    const open = spawnLp([
      '-remoteSigner',
      ...chainFlags,
      ...['-ethKeystorePath', keyFile, '-ethPassword', PASSWORD, '-httpAddr', `0.0.0.0:${await freePort()}`],
    ]);
    expect(await open.exited).toBe(2);
    expect(open.stderr()).toMatch(
      /^lp-gateway: refusing to start: a remote signer on the non-loopback address 0\.0\.0\.0:\d+ with neither -remoteSignerAuthToken nor -remoteSignerWebhookUrl/,
    );
    expect(open.stdout()).toBe('');

    // A gateway that pays through a signer takes no key.
    const keyed = spawnLp([
      ...['-httpAddr', `127.0.0.1:${port}`, '-remoteSignerUrl', signerUrl, '-ethKeystorePath', keyFile],
    ]);
    expect(await keyed.exited).toBe(2);
    expect(keyed.stderr()).toContain('-ethKeystorePath');
    expect(keyed.stderr()).toContain('must not be set with -remoteSignerUrl');
  }, 60_000);
});
