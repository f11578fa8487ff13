// A throwaway chain for chain-read tests: ganache in process on 127.0.0.1, with our own minimal
// Livepeer contract doubles (test/fixtures/contracts/*.sol) compiled by solc, deployed with viem
// and registered in the Controller under their real name ids.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ganache from 'ganache';
import solc from 'solc';
import {
  type Abi,
  type Address,
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  type Hex,
  http,
  keccak256,
  type LocalAccount,
  type PublicClient,
  parseEther,
  stringToBytes,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const CONTRACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'contracts');

/** The well-known public test key (Hardhat/Anvil #0), spec §7.2. */
export const TEST_SENDER_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

export type ContractKey =
  | 'Controller'
  | 'TicketBroker'
  | 'BondingManager'
  | 'RoundsManager'
  | 'ServiceRegistry';

export interface CompiledContract {
  abi: Abi;
  bytecode: Hex;
}

let compiled: Record<ContractKey, CompiledContract> | undefined;

/** solc-compiles test/fixtures/contracts/*.sol once per process. */
export function compileContracts(): Record<ContractKey, CompiledContract> {
  if (compiled) return compiled;
  const sources: Record<string, { content: string }> = {};
  for (const f of readdirSync(CONTRACTS_DIR)) {
    if (f.endsWith('.sol')) sources[f] = { content: readFileSync(join(CONTRACTS_DIR, f), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      // ganache 7 knows no PUSH0 (shanghai) reliably: stay on paris.
      evmVersion: 'paris',
      optimizer: { enabled: false },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join('\n')}`);
  const out = {} as Record<ContractKey, CompiledContract>;
  for (const key of [
    'Controller',
    'TicketBroker',
    'BondingManager',
    'RoundsManager',
    'ServiceRegistry',
  ] as ContractKey[]) {
    const c = output.contracts[`${key}.sol`]?.[key];
    if (!c) throw new Error(`solc output has no ${key}`);
    out[key] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
  }
  compiled = out;
  return out;
}

export interface LocalChain {
  url: string;
  chainId: number;
  controller: Address;
  addresses: Record<ContractKey, Address>;
  abis: Record<ContractKey, Abi>;
  /** accounts[0] is the spec's test key (100 ETH); then four more funded accounts; the last one has no ETH. */
  accounts: LocalAccount[];
  publicClient: PublicClient;
  wallet(account: LocalAccount): WalletClient;
  /** Sends a transaction to one of our contracts and waits for it to be mined. */
  send(
    account: LocalAccount,
    contract: ContractKey,
    functionName: string,
    args?: readonly unknown[],
    value?: bigint,
  ): Promise<Hex>;
  close(): Promise<void>;
}

export interface LocalChainOptions {
  chainId?: number;
}

export async function startLocalChain(opts: LocalChainOptions = {}): Promise<LocalChain> {
  const chainId = opts.chainId ?? 1337;
  const contracts = compileContracts();
  const keys: Hex[] = [TEST_SENDER_KEY];
  for (let i = 1; i <= 5; i++) keys.push(keccak256(stringToBytes(`lp-gateway test account ${i}`)));
  const accounts = keys.map((k) => privateKeyToAccount(k));
  const server = ganache.server({
    logging: { quiet: true },
    chain: { chainId, networkId: chainId },
    wallet: {
      accounts: keys.map((secretKey, i) => ({
        secretKey,
        balance: i === keys.length - 1 ? 0n : parseEther('100'),
      })),
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.listen(0, '127.0.0.1', (err) => (err ? reject(err) : resolve()));
  });
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;
  const chain = defineChain({
    id: chainId,
    name: 'ganache',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(url) }) as PublicClient;
  const wallet = (account: LocalAccount) => createWalletClient({ account, chain, transport: http(url) });
  const deployer = accounts[0]!;
  const addresses = {} as Record<ContractKey, Address>;
  const abis = {} as Record<ContractKey, Abi>;
  for (const key of Object.keys(contracts) as ContractKey[]) {
    const hash = await wallet(deployer).deployContract({
      abi: contracts[key].abi,
      bytecode: contracts[key].bytecode,
      account: deployer,
      chain,
    });
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    if (!receipt.contractAddress) throw new Error(`deploying ${key} gave no address`);
    addresses[key] = getAddress(receipt.contractAddress);
    abis[key] = contracts[key].abi;
  }
  const send: LocalChain['send'] = async (account, contract, functionName, args = [], value) => {
    const hash = await wallet(account).writeContract({
      address: addresses[contract],
      abi: abis[contract],
      functionName,
      args,
      value,
      account,
      chain,
    } as Parameters<WalletClient['writeContract']>[0]);
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    if (receipt.status !== 'success') throw new Error(`${contract}.${functionName} reverted`);
    return hash;
  };
  for (const name of ['TicketBroker', 'BondingManager', 'RoundsManager', 'ServiceRegistry'] as const) {
    await send(deployer, 'Controller', 'setContract', [keccak256(stringToBytes(name)), addresses[name]]);
  }
  return {
    url,
    chainId,
    controller: addresses.Controller,
    addresses,
    abis,
    accounts,
    publicClient,
    wallet,
    send,
    close: () => server.close(),
  };
}
