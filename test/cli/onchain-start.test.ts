// `lp-gateway start` on chain end to end: the real bin/lp-gateway.js in a child process against
// ganache with our Livepeer contract doubles; the account comes from a keystore file.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type LocalChain, startLocalChain, TEST_SENDER_KEY } from '../helpers/local-chain.ts';
import { waitFor } from '../helpers/wait.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lp-gateway.js');
const PASSWORD = 'correct horse battery';
const ORCH_URI = 'https://127.0.0.1:1';

let lc: LocalChain;
let keyFile: string;
let chainFlags: string[];
let child: ChildProcess | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  lc = await startLocalChain();
  const dir = mkdtempSync(join(tmpdir(), 'lp-onchain-start-'));
  keyFile = join(dir, 'sender.json');
  writeFileSync(keyFile, JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PASSWORD, { n: 1024 })));
  // One active orchestrator in the pool, its service URI unreachable.
  const [admin, orch] = [lc.accounts[0]!, lc.accounts[1]!];
  await lc.send(admin, 'BondingManager', 'setTranscoder', [orch.address, 1000n, true]);
  await lc.send(orch, 'ServiceRegistry', 'setServiceURI', [ORCH_URI]);
  chainFlags = [
    '-network',
    'arbitrum-one-mainnet',
    '-ethUrl',
    lc.url,
    '-ethController',
    lc.controller,
    '--chainId',
    String(lc.chainId),
    '--aiServiceRegistry',
    lc.addresses.ServiceRegistry,
    '-ethKeystorePath',
    keyFile,
  ];
}, 30_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await lc?.close();
});

describe('lp-gateway start on chain', () => {
  it('starts with the keystore account and lists the on-chain orchestrators', async () => {
    const port = await freePort();
    child = spawn(
      process.execPath,
      [BIN, 'start', ...chainFlags, '-ethPassword', PASSWORD, '-httpAddr', `127.0.0.1:${port}`],
      { env: { ...process.env, LP_ETHPASSWORD: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    await waitFor(
      () => stdout.includes('lp-gateway is running') || child!.exitCode !== null,
      'the gateway to start',
      25_000,
    );
    expect(child.exitCode, stderr).toBeNull();
    expect(stdout).toContain('lp-gateway is running (network: arbitrum-one-mainnet)');
    expect(stdout).toContain(`account:          ${lc.accounts[0]!.address}`);
    expect(stdout).toContain('TicketBroker:     deposit 0 ETH, reserve 0 ETH');
    expect(stdout).toMatch(/warning: the TicketBroker deposit and reserve are 0/);
    expect(stdout + stderr).not.toContain(PASSWORD);
    expect(stdout + stderr).not.toContain(TEST_SENDER_KEY.slice(2));

    let body: { orchestrators: { url: string; state: string }[] } = { orchestrators: [] };
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/orchestrators`);
        body = (await res.json()) as typeof body;
        return body.orchestrators.some((o) => o.state === 'unreachable');
      },
      'the on-chain orchestrator to be tried',
      15_000,
    );
    expect(body.orchestrators).toHaveLength(1);
    expect(body.orchestrators[0]!.url).toContain('127.0.0.1:1');
    expect(body.orchestrators[0]!.state).toBe('unreachable');
  }, 40_000);

  it('refuses a wrong password in one line with exit status 2', async () => {
    const port = await freePort();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'start', ...chainFlags, '-ethPassword', 'wrong password!', '-httpAddr', `127.0.0.1:${port}`],
        { env: { ...process.env, LP_ETHPASSWORD: '' }, timeout: 20_000 },
        (err, stdout, stderr) => {
          const code = err ? ((err as { code?: number }).code ?? null) : 0;
          resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
        },
      );
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toEqual(['lp-gateway: keystore: wrong password (MAC mismatch)']);
    expect(r.stderr).not.toContain('wrong password!');
    expect(r.stderr).not.toContain(TEST_SENDER_KEY.slice(2));
  }, 30_000);
});
