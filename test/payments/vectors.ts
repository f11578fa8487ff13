// Shared inputs of ../shared/spec/livepeer-pm.md §7.2 (Hardhat account #0, a public test key).
import { type Hex, hexToBytes } from 'viem';
import { bigintToBytes } from '../../src/payments/ticket.ts';
import type { OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

export const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const TEST_ADDRESS: Hex = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
export const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
export const FACE_VALUE = 100000000n;
export const WIN_PROB = 5789604461865809771178549250434395392663499233282028201972879200395660n;
export const RAND_HASH_10: Hex = '0xc65a7bb8d6351c1cf70c95a316cc6a92839c986682d98bc35f958f4883f9d2a8';
/** keccak256("foo") */
export const FOO_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';

export const vectorInfo = (): OrchestratorInfo => ({
  ticketParams: {
    recipient: hexToBytes(RECIPIENT),
    faceValue: bigintToBytes(FACE_VALUE),
    winProb: bigintToBytes(WIN_PROB),
    recipientRandHash: hexToBytes(RAND_HASH_10),
    seed: hexToBytes('0x1234567890abcdef'),
    expirationBlock: bigintToBytes(20000000n),
    expirationParams: { creationRound: 10n, creationRoundBlockHash: hexToBytes(FOO_HASH) },
  },
  priceInfo: { pricePerUnit: 1200n, pixelsPerUnit: 1n },
});

export const PAYMENT_HEX =
  '0a6d0a1473aed7b5deb30222fa896f399d46cc99c7bee57f120405f5e1001a1dd6bf94d5e57a42bc3d32907604691b4c8ca08cd2e1b9c3db8c8330a18c2220c65a7bb8d6351c1cf70c95a316cc6a92839c986682d98bc35f958f4883f9d2a82a081234567890abcdef320401312d001214f39fd6e51aad88f6f4ce6ab8827279cfffb922661a24080a122041b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d224508011241e8c9fc5ad04f4179fc5c92e5a35bc77f096d4c3b083b45a4b8aceb5103364032495789ee6b1db488b1827ff7b5dc2bb6ef076f2486ebe8fad9777c38ace153701c224508021241de58cf669ad9d7f78751972870e797595bbb2c87bb44cd3bd19939aa032bb6f444b25d04906481017215631678b09db54b9939d780a7f9274bb3dd91bf109cc01c224508031241754a6812c75e31f41b2118f00dc97fe0d046270baf09c0cfa8ba75adca9058a706098c5a4d5d542f1e1fca16227878938f8d96699b0a3c5326bd4828aa57fb121b2a0508b0091001';
export const PAYMENT_HEADER =
  'Cm0KFHOu17XeswIi+olvOZ1GzJnHvuV/EgQF9eEAGh3Wv5TV5XpCvD0ykHYEaRtMjKCM0uG5w9uMgzChjCIgxlp7uNY1HBz3DJWjFsxqkoOcmGaC2YvDX5WPSIP50qgqCBI0VniQq83vMgQBMS0AEhTzn9blGq2I9vTOariCcnnP/7kiZhokCAoSIEGxoGSXUq8bKLPcKaFVbu54HkpMOh9/U/kPqDTeCYxNIkUIARJB6Mn8WtBPQXn8XJLlo1vHfwltTDsIO0WkuKzrUQM2QDJJV4nuax20iLGCf/e13Cu27wdvJIbr6PrZd3w4rOFTcBwiRQgCEkHeWM9mmtnX94dRlyhw55dZW7ssh7tEzTvRmTmqAyu29ESyXQSQZIEBchVjFniwnbVLmTnXgKf5J0uz3ZG/EJzAHCJFCAMSQXVKaBLHXjH0GyEY8A3Jf+DQRicLrwnAz6i6da3KkFinBgmMWk1dVC8eH8oWInh4k4+NlmmbCjxTJr1IKKpX+xIbKgUIsAkQAQ==';
