// The funding commands end to end: the real bin/lp-gateway.js (tsx + src/cli.ts) in a child
// process against ganache with our Livepeer contract doubles, and keystore files in a temp dir.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keccak256, stringToBytes } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type LocalChain, startLocalChain, TEST_SENDER_KEY } from '../helpers/local-chain.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lp-gateway.js');
const PASSWORD = 'correct horse battery';
/** accounts[5] of the helper: the one with no ETH. */
const EMPTY_KEY = keccak256(stringToBytes('lp-gateway test account 5'));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function lpGateway(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, LP_ETHPASSWORD: '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? null) : 0;
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
      },
    );
  });
}

let lc: LocalChain;
let dir: string;
let keyFile: string;
let emptyKeyFile: string;
let passwordFile: string;
let chainFlags: string[];

beforeAll(async () => {
  lc = await startLocalChain();
  dir = mkdtempSync(join(tmpdir(), 'lp-cli-'));
  keyFile = join(dir, 'sender.json');
  writeFileSync(keyFile, JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PASSWORD, { n: 1024 })));
  emptyKeyFile = join(dir, 'empty.json');
  writeFileSync(emptyKeyFile, JSON.stringify(await encryptKeystore(EMPTY_KEY, PASSWORD, { n: 1024 })));
  passwordFile = join(dir, 'password.txt');
  writeFileSync(passwordFile, `${PASSWORD}\n`);
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
  ];
}, 30_000);

afterAll(async () => {
  await lc?.close();
});

/** One line on stderr, exit status 1, nothing secret anywhere. */
function expectOneLineFailure(r: Run): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  for (const secret of [PASSWORD, 'wrong password!', TEST_SENDER_KEY.slice(2), EMPTY_KEY.slice(2)]) {
    expect(r.stdout + r.stderr).not.toContain(secret);
  }
  return lines[0]!;
}

describe('lp-gateway balance / deposit', () => {
  it('balance shows the address, ETH and a zero deposit', async () => {
    const r = await lpGateway([
      'balance',
      ...chainFlags,
      '-ethKeystorePath',
      keyFile,
      '-ethPassword',
      passwordFile,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`address:        ${lc.accounts[0]!.address}`);
    expect(r.stdout).toMatch(/ETH balance: +\d+(\.\d+)? ETH/);
    expect(r.stdout).toContain('deposit:        0 ETH (0 wei)');
    expect(r.stdout).toContain('reserve:        0 ETH (0 wei)');
    expect(r.stdout).toContain('withdraw round: 0');
  });

  it('deposit funds the deposit and reserve, and balance then shows them', async () => {
    const r = await lpGateway(
      [
        'deposit',
        '--deposit',
        '1000000000000000',
        '--reserve=0.002eth',
        ...chainFlags,
        '-ethKeystorePath',
        keyFile,
      ],
      { LP_ETHPASSWORD: PASSWORD },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^tx: +0x[0-9a-f]{64}$/m);
    expect(r.stdout).toMatch(/^fee: +0\.\d+ ETH \(\d+ wei\)$/m);
    expect(r.stdout).toContain('deposit:        0.001 ETH (1000000000000000 wei)');
    expect(r.stdout).toContain('reserve:        0.002 ETH (2000000000000000 wei)');
    expect(r.stdout).not.toContain(PASSWORD);

    const b = await lpGateway([
      'balance',
      ...chainFlags,
      '-ethKeystorePath',
      keyFile,
      '-ethPassword',
      passwordFile,
    ]);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain('deposit:        0.001 ETH (1000000000000000 wei)');
    expect(b.stdout).toContain('reserve:        0.002 ETH (2000000000000000 wei)');
  });

  it.concurrent('refuses a wrong password in one line, without showing it or the key', async () => {
    const r = await lpGateway([
      'balance',
      ...chainFlags,
      '-ethKeystorePath',
      keyFile,
      '-ethPassword',
      'wrong password!',
    ]);
    expect(expectOneLineFailure(r)).toBe('lp-gateway balance: keystore: wrong password (MAC mismatch)');
  });

  it.concurrent('says in one line that an unreachable RPC is unreachable', async () => {
    const r = await lpGateway([
      'balance',
      '-network',
      'arbitrum-one-mainnet',
      '-ethUrl',
      'http://127.0.0.1:9',
      '-ethKeystorePath',
      keyFile,
      '-ethPassword',
      passwordFile,
    ]);
    expect(expectOneLineFailure(r)).toMatch(
      /^lp-gateway balance: Ethereum RPC http:\/\/127\.0\.0\.1:9 is unreachable: \S+/,
    );
  });

  it.concurrent('says the commands need on-chain settings when the network is offchain', async () => {
    const r = await lpGateway([
      'deposit',
      '--deposit',
      '1',
      '-network',
      'offchain',
      '-ethKeystorePath',
      keyFile,
      '-ethPassword',
      PASSWORD,
    ]);
    expect(expectOneLineFailure(r)).toMatch(/^lp-gateway deposit: needs on-chain settings: -network /);
  });

  it.concurrent('says insufficient funds for an account with no ETH', async () => {
    const r = await lpGateway([
      'deposit',
      '--deposit',
      '0.001eth',
      ...chainFlags,
      '-ethKeystorePath',
      emptyKeyFile,
      '-ethPassword',
      passwordFile,
    ]);
    expect(expectOneLineFailure(r)).toMatch(
      new RegExp(`^lp-gateway deposit: insufficient funds: ${lc.accounts[5]!.address} has 0 ETH`),
    );
  });

  it.concurrent('refuses a missing amount and a wrong chain in one line', async () => {
    const [noAmount, zero, wrongChain] = await Promise.all([
      lpGateway(['deposit', ...chainFlags, '-ethKeystorePath', keyFile]),
      lpGateway(['deposit', '--reserve', '0', ...chainFlags, '-ethKeystorePath', keyFile], {
        LP_ETHPASSWORD: PASSWORD,
      }),
      lpGateway(['balance', ...chainFlags, '--chainId', '42161', '-ethKeystorePath', keyFile], {
        LP_ETHPASSWORD: PASSWORD,
      }),
    ]);
    expect(expectOneLineFailure(noAmount)).toBe(
      'lp-gateway deposit: needs -ethPassword (the keystore password, or a file holding it) or LP_ETHPASSWORD',
    );
    expect(expectOneLineFailure(zero)).toBe(
      'lp-gateway deposit: needs --deposit AMOUNT and/or --reserve AMOUNT greater than 0',
    );
    expect(expectOneLineFailure(wrongChain)).toMatch(
      /serves chain id 1337, expected 42161 \(Arbitrum One\)$/,
    );
  });
});
