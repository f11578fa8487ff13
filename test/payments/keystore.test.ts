// JSON keystores (Web3 Secret Storage v3): our encrypt/decrypt round trip with the spec's public
// test key, and the definition's own PBKDF2 and scrypt test vectors.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToHex } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  decryptKeystore,
  encryptKeystore,
  KeystoreError,
  keystoreAccount,
  loadKeystoreAccount,
} from '../../src/payments/keystore.ts';
import { TEST_ADDRESS, TEST_KEY } from './vectors.ts';

const dir = mkdtempSync(join(tmpdir(), 'lp-keystore-'));
const write = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe('keystore', () => {
  it('round-trips the test key with scrypt and loads it from a file', async () => {
    const ks = await encryptKeystore(TEST_KEY, 'correct horse', { n: 1024 });
    expect(ks.address).toBe(TEST_ADDRESS.slice(2).toLowerCase());
    expect(JSON.stringify(ks)).not.toContain(TEST_KEY.slice(2));
    const path = write('scrypt.json', JSON.stringify(ks));
    const account = await loadKeystoreAccount(path, 'correct horse');
    expect(account.address).toBe(TEST_ADDRESS);
  });

  it('round-trips with pbkdf2', async () => {
    const ks = await encryptKeystore(TEST_KEY, 'pw', { kdf: 'pbkdf2', c: 1000 });
    expect(bytesToHex(await decryptKeystore(ks, 'pw'))).toBe(TEST_KEY);
  });

  it('says wrong password in one line', async () => {
    const ks = await encryptKeystore(TEST_KEY, 'right', { n: 1024 });
    const err = await keystoreAccount(ks, 'wrong').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeystoreError);
    expect((err as Error).message).toBe('keystore: wrong password (MAC mismatch)');
  });

  it('says what is wrong with an unreadable or invalid file', async () => {
    await expect(loadKeystoreAccount(join(dir, 'missing.json'), 'x')).rejects.toThrow(
      /^keystore: cannot read .*missing\.json \(ENOENT\)$/,
    );
    await expect(loadKeystoreAccount(write('bad.json', '{not json'), 'x')).rejects.toThrow(
      /is not valid JSON$/,
    );
    await expect(keystoreAccount({ version: 1 }, 'x')).rejects.toThrow(
      'keystore: unsupported version 1 (only v3)',
    );
    await expect(keystoreAccount({ version: 3 }, 'x')).rejects.toThrow('keystore: missing crypto section');
    const ks = await encryptKeystore(TEST_KEY, 'pw', { n: 1024 });
    await expect(
      keystoreAccount({ ...ks, crypto: { ...ks.crypto, cipher: 'aes-256-cbc' } }, 'pw'),
    ).rejects.toThrow('keystore: unsupported cipher aes-256-cbc');
    await expect(
      keystoreAccount(
        { ...ks, crypto: { ...ks.crypto, kdfparams: { ...ks.crypto.kdfparams, n: 1000 } } },
        'pw',
      ),
    ).rejects.toThrow('keystore: kdfparams.n must be a power of two');
    await expect(
      keystoreAccount({ ...ks, address: '0000000000000000000000000000000000000001' }, 'pw'),
    ).rejects.toThrow(/does not match the key/);
  });

  // https://ethereum.org/developers/docs/data-structures-and-encoding/web3-secret-storage/ test vectors:
  // password "testpassword", private key 7a28b5ba…fe9d.
  const KEY = '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d';
  it('decrypts the Web3 Secret Storage PBKDF2 vector', async () => {
    const ks = {
      crypto: {
        cipher: 'aes-128-ctr',
        cipherparams: { iv: '6087dab2f9fdbbfaddc31a909735c1e6' },
        ciphertext: '5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46',
        kdf: 'pbkdf2',
        kdfparams: {
          c: 262144,
          dklen: 32,
          prf: 'hmac-sha256',
          salt: 'ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd',
        },
        mac: '517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2',
      },
      id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
      version: 3,
    };
    expect(bytesToHex(await decryptKeystore(ks, 'testpassword'))).toBe(KEY);
  });

  it('decrypts the Web3 Secret Storage scrypt vector', async () => {
    const ks = {
      crypto: {
        cipher: 'aes-128-ctr',
        cipherparams: { iv: '83dbcc02d8ccb40e466191a123791e0e' },
        ciphertext: 'd172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c',
        kdf: 'scrypt',
        kdfparams: {
          dklen: 32,
          n: 262144,
          p: 8,
          r: 1,
          salt: 'ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19',
        },
        mac: '2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097',
      },
      id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
      version: 3,
    };
    expect(bytesToHex(await decryptKeystore(ks, 'testpassword'))).toBe(KEY);
  });
});
