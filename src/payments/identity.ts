// Who the gateway is to an orchestrator: its address and the signatures go-livepeer
// expects. Off-chain: the zero address and empty signatures (orchestrators skip the check).
import {
  getAddress,
  type Hex,
  hexToBytes,
  keccak256,
  type LocalAccount,
  stringToBytes,
  zeroAddress,
} from 'viem';
import type { TicketSigner } from './signing-pool.ts';

export interface GatewayIdentity {
  readonly address: Hex;
  /** EIP-191 signature over keccak256 of the checksummed address (OrchestratorRequest.sig). */
  signOrchestratorRequest(): Promise<Uint8Array>;
  /** EIP-191 signature over keccak256(message) (segment credentials). */
  signHashOf(message: Uint8Array): Promise<Uint8Array>;
}

export const offchainIdentity: GatewayIdentity = {
  address: zeroAddress,
  signOrchestratorRequest: async () => new Uint8Array(0),
  signHashOf: async () => new Uint8Array(0),
};

/**
 * A gateway that pays through a remote signer: the signer's address and its OrchestratorRequest
 * signature; it signs nothing itself, so segment credentials it makes carry no signature (as
 * go-livepeer's keyless gateway's: only an off-chain orchestrator takes them).
 */
export function remoteIdentity(address: Hex, orchestratorRequestSig: Uint8Array): GatewayIdentity {
  const sig = Uint8Array.from(orchestratorRequestSig);
  return {
    address: getAddress(address),
    signOrchestratorRequest: async () => sig,
    signHashOf: async () => new Uint8Array(0),
  };
}

/** Signs with `signer` when given (the gateway's signing pool), else with the account on this thread. */
export function accountIdentity(account: LocalAccount, signer?: TicketSigner): GatewayIdentity {
  const address = getAddress(account.address);
  const signRaw = async (hash: Hex) =>
    hexToBytes(
      signer ? (await signer.signHashes([hash]))[0]! : await account.signMessage({ message: { raw: hash } }),
    );
  return {
    address,
    // go-livepeer verifies against addr.Hex(), the EIP-55 form; a lowercase address fails.
    signOrchestratorRequest: () => signRaw(keccak256(stringToBytes(address))),
    signHashOf: (message) => signRaw(keccak256(message)),
  };
}
