// Ethereum JSON keystore files (Web3 Secret Storage v3, as geth writes them): scrypt or
// PBKDF2-HMAC-SHA256, AES-128-CTR, MAC = keccak256(derivedKey[16..32] ‖ ciphertext).
// The private key never leaves this module except inside the viem account, and a copy handed to
// the caller's `withKey` (the ticket signing pool's workers).
import {
  createCipheriv,
  createDecipheriv,
  pbkdf2,
  randomBytes,
  randomUUID,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
// Only for scrypt parameters OpenSSL refuses (N ≥ 2^(16·r), e.g. r = 1); a dependency of viem.
import { scryptAsync as nobleScrypt } from '@noble/hashes/scrypt';
import { bytesToHex, concat, getAddress, hexToBytes, keccak256, type LocalAccount } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const scryptAsync = promisify(scrypt) as (
  password: Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;
const pbkdf2Async = promisify(pbkdf2);

export class KeystoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeystoreError';
  }
}

interface ScryptParams {
  dklen: number;
  n: number;
  r: number;
  p: number;
  salt: string;
}
interface Pbkdf2Params {
  dklen: number;
  c: number;
  prf: string;
  salt: string;
}
export interface KeystoreV3 {
  version: 3;
  id: string;
  address?: string;
  crypto: {
    cipher: 'aes-128-ctr';
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: 'scrypt' | 'pbkdf2';
    kdfparams: ScryptParams | Pbkdf2Params;
    mac: string;
  };
}

const fail = (what: string): never => {
  throw new KeystoreError(`keystore: ${what}`);
};

const hexField = (v: unknown, name: string): Buffer => {
  if (typeof v !== 'string' || !/^(0x)?([0-9a-fA-F]{2})*$/.test(v)) fail(`invalid ${name}`);
  return Buffer.from((v as string).replace(/^0x/, ''), 'hex');
};
const intField = (v: unknown, name: string, maxValue = 2 ** 31): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > maxValue) fail(`invalid ${name}`);
  return v as number;
};

async function deriveKey(kdf: unknown, params: Record<string, unknown>, password: string): Promise<Buffer> {
  const pw = Buffer.from(password, 'utf8');
  const salt = hexField(params.salt, 'kdfparams.salt');
  const dklen = intField(params.dklen, 'kdfparams.dklen', 1024);
  if (dklen < 32) fail('kdfparams.dklen must be at least 32');
  if (kdf === 'scrypt') {
    const n = intField(params.n, 'kdfparams.n');
    if ((n & (n - 1)) !== 0 || n < 2) fail('kdfparams.n must be a power of two');
    const r = intField(params.r, 'kdfparams.r', 1024);
    const p = intField(params.p, 'kdfparams.p', 1024);
    const maxmem = 128 * n * r + 128 * r * p + 64 * 1024 * 1024;
    if (16 * r < 53 && n >= 2 ** (16 * r)) {
      return Buffer.from(await nobleScrypt(pw, salt, { N: n, r, p, dkLen: dklen, maxmem }));
    }
    return scryptAsync(pw, salt, dklen, { N: n, r, p, maxmem });
  }
  if (kdf === 'pbkdf2') {
    if (params.prf !== 'hmac-sha256') fail(`unsupported pbkdf2 prf ${String(params.prf)}`);
    const c = intField(params.c, 'kdfparams.c', 2 ** 30);
    return pbkdf2Async(pw, salt, c, dklen, 'sha256');
  }
  return fail(`unsupported kdf ${String(kdf)}`);
}

/** The 32-byte private key from a parsed v3 keystore. */
export async function decryptKeystore(json: unknown, password: string): Promise<Uint8Array> {
  if (typeof json !== 'object' || json === null) return fail('not a JSON object');
  const ks = json as Record<string, unknown>;
  if (ks.version !== 3) fail(`unsupported version ${String(ks.version)} (only v3)`);
  // geth wrote "Crypto" in old files.
  const c = (ks.crypto ?? ks.Crypto) as Record<string, unknown> | undefined;
  if (typeof c !== 'object' || c === null) return fail('missing crypto section');
  if (c.cipher !== 'aes-128-ctr') fail(`unsupported cipher ${String(c.cipher)}`);
  const iv = hexField((c.cipherparams as Record<string, unknown> | undefined)?.iv, 'cipherparams.iv');
  if (iv.length !== 16) fail('cipherparams.iv must be 16 bytes');
  const ciphertext = hexField(c.ciphertext, 'ciphertext');
  const mac = hexField(c.mac, 'mac');
  if (typeof c.kdfparams !== 'object' || c.kdfparams === null) return fail('missing kdfparams');
  const derived = await deriveKey(c.kdf, c.kdfparams as Record<string, unknown>, password);
  const expected = hexToBytes(keccak256(concat([derived.subarray(16, 32), ciphertext])));
  if (mac.length !== 32 || !timingSafeEqual(Buffer.from(expected), mac)) {
    fail('wrong password (MAC mismatch)');
  }
  const decipher = createDecipheriv('aes-128-ctr', derived.subarray(0, 16), iv);
  const key = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  if (key.length !== 32) fail('decrypted key is not 32 bytes');
  return new Uint8Array(key);
}

/**
 * A viem account from a keystore file; checks the file's address field when it has one.
 * `withKey` sees the private key once it is known good, before it is wiped here.
 */
export async function loadKeystoreAccount(
  path: string,
  password: string,
  withKey?: (key: Uint8Array) => void,
): Promise<LocalAccount> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return fail(`cannot read ${path} (${code})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail(`${path} is not valid JSON`);
  }
  return keystoreAccount(json, password, withKey);
}

/** A viem account from parsed keystore JSON; `withKey` as in loadKeystoreAccount. */
export async function keystoreAccount(
  json: unknown,
  password: string,
  withKey?: (key: Uint8Array) => void,
): Promise<LocalAccount> {
  const key = await decryptKeystore(json, password);
  try {
    let account: LocalAccount;
    try {
      account = privateKeyToAccount(bytesToHex(key));
    } catch {
      return fail('decrypted key is not a valid secp256k1 key');
    }
    const declared = (json as { address?: unknown }).address;
    if (typeof declared === 'string' && declared.length > 0) {
      let addr: string | undefined;
      try {
        addr = getAddress(declared.startsWith('0x') ? declared : `0x${declared}`);
      } catch {
        fail('invalid address field');
      }
      if (addr !== account.address) fail(`address field ${addr} does not match the key (${account.address})`);
    }
    withKey?.(key);
    return account;
  } finally {
    key.fill(0);
  }
}

export interface EncryptOptions {
  kdf?: 'scrypt' | 'pbkdf2';
  /** scrypt N (default 262144, geth's standard) */
  n?: number;
  r?: number;
  p?: number;
  /** pbkdf2 iterations (default 262144) */
  c?: number;
  /** For reproducible output in tests only. */
  salt?: Uint8Array;
  iv?: Uint8Array;
  id?: string;
}

/** A v3 keystore for a private key (for the funding command and tests). */
export async function encryptKeystore(
  privateKey: Uint8Array | `0x${string}`,
  password: string,
  opts: EncryptOptions = {},
): Promise<KeystoreV3> {
  const key = typeof privateKey === 'string' ? hexToBytes(privateKey) : privateKey;
  if (key.length !== 32) throw new KeystoreError('keystore: private key must be 32 bytes');
  const address = privateKeyToAccount(bytesToHex(key)).address;
  const salt = Buffer.from(opts.salt ?? randomBytes(32));
  const iv = Buffer.from(opts.iv ?? randomBytes(16));
  const kdf = opts.kdf ?? 'scrypt';
  const kdfparams: ScryptParams | Pbkdf2Params =
    kdf === 'scrypt'
      ? { dklen: 32, n: opts.n ?? 262144, r: opts.r ?? 8, p: opts.p ?? 1, salt: salt.toString('hex') }
      : { dklen: 32, c: opts.c ?? 262144, prf: 'hmac-sha256', salt: salt.toString('hex') };
  const derived = await deriveKey(kdf, kdfparams as unknown as Record<string, unknown>, password);
  const cipher = createCipheriv('aes-128-ctr', derived.subarray(0, 16), iv);
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
  const mac = keccak256(concat([derived.subarray(16, 32), ciphertext])).slice(2);
  return {
    version: 3,
    id: opts.id ?? randomUUID(),
    address: address.slice(2).toLowerCase(),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: iv.toString('hex') },
      ciphertext: ciphertext.toString('hex'),
      kdf,
      kdfparams,
      mac,
    },
  };
}
