// Byte vectors from ../shared/spec/livepeer-pm.md §7.2 (derived with viem) and go-livepeer's field numbers.
import { hexToBytes, toHex } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  Capability,
  capabilityBitstring,
  decodeMessage,
  encodeMessage,
  hasCapability,
  type Payment,
} from '../../src/wire/lp-rpc.ts';

const h = (hex: string) => hexToBytes(hex as `0x${string}`);

const PAYMENT_HEX =
  '0a6d0a1473aed7b5deb30222fa896f399d46cc99c7bee57f120405f5e1001a1dd6bf94d5e57a42bc3d32907604691b4c8ca08cd2e1b9c3db8c8330a18c2220c65a7bb8d6351c1cf70c95a316cc6a92839c986682d98bc35f958f4883f9d2a82a081234567890abcdef320401312d001214f39fd6e51aad88f6f4ce6ab8827279cfffb922661a24080a122041b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d224508011241e8c9fc5ad04f4179fc5c92e5a35bc77f096d4c3b083b45a4b8aceb5103364032495789ee6b1db488b1827ff7b5dc2bb6ef076f2486ebe8fad9777c38ace153701c224508021241de58cf669ad9d7f78751972870e797595bbb2c87bb44cd3bd19939aa032bb6f444b25d04906481017215631678b09db54b9939d780a7f9274bb3dd91bf109cc01c224508031241754a6812c75e31f41b2118f00dc97fe0d046270baf09c0cfa8ba75adca9058a706098c5a4d5d542f1e1fca16227878938f8d96699b0a3c5326bd4828aa57fb121b2a0508b0091001';
const PAYMENT_HEADER =
  'Cm0KFHOu17XeswIi+olvOZ1GzJnHvuV/EgQF9eEAGh3Wv5TV5XpCvD0ykHYEaRtMjKCM0uG5w9uMgzChjCIgxlp7uNY1HBz3DJWjFsxqkoOcmGaC2YvDX5WPSIP50qgqCBI0VniQq83vMgQBMS0AEhTzn9blGq2I9vTOariCcnnP/7kiZhokCAoSIEGxoGSXUq8bKLPcKaFVbu54HkpMOh9/U/kPqDTeCYxNIkUIARJB6Mn8WtBPQXn8XJLlo1vHfwltTDsIO0WkuKzrUQM2QDJJV4nuax20iLGCf/e13Cu27wdvJIbr6PrZd3w4rOFTcBwiRQgCEkHeWM9mmtnX94dRlyhw55dZW7ssh7tEzTvRmTmqAyu29ESyXQSQZIEBchVjFniwnbVLmTnXgKf5J0uz3ZG/EJzAHCJFCAMSQXVKaBLHXjH0GyEY8A3Jf+DQRicLrwnAz6i6da3KkFinBgmMWk1dVC8eH8oWInh4k4+NlmmbCjxTJr1IKKpX+xIbKgUIsAkQAQ==';

const bigBytes = (v: bigint) =>
  h(`0x${v.toString(16).padStart(Math.ceil(v.toString(16).length / 2) * 2, '0')}`);

const vectorPayment: Payment = {
  ticketParams: {
    recipient: h('0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F'),
    faceValue: bigBytes(100000000n),
    winProb: bigBytes(5789604461865809771178549250434395392663499233282028201972879200395660n),
    recipientRandHash: h('0xc65a7bb8d6351c1cf70c95a316cc6a92839c986682d98bc35f958f4883f9d2a8'),
    seed: h('0x1234567890abcdef'),
    expirationBlock: bigBytes(20000000n),
  },
  sender: h('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'),
  expirationParams: {
    creationRound: 10n,
    creationRoundBlockHash: h('0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d'),
  },
  ticketSenderParams: [
    {
      senderNonce: 1,
      sig: h(
        '0xe8c9fc5ad04f4179fc5c92e5a35bc77f096d4c3b083b45a4b8aceb5103364032495789ee6b1db488b1827ff7b5dc2bb6ef076f2486ebe8fad9777c38ace153701c',
      ),
    },
    {
      senderNonce: 2,
      sig: h(
        '0xde58cf669ad9d7f78751972870e797595bbb2c87bb44cd3bd19939aa032bb6f444b25d04906481017215631678b09db54b9939d780a7f9274bb3dd91bf109cc01c',
      ),
    },
    {
      senderNonce: 3,
      sig: h(
        '0x754a6812c75e31f41b2118f00dc97fe0d046270baf09c0cfa8ba75adca9058a706098c5a4d5d542f1e1fca16227878938f8d96699b0a3c5326bd4828aa57fb121b',
      ),
    },
  ],
  expectedPrice: { pricePerUnit: 1200n, pixelsPerUnit: 1n },
};

describe('lp_rpc wire format', () => {
  it('encodes a Payment byte for byte as go-livepeer does', () => {
    const bytes = encodeMessage('Payment', vectorPayment);
    expect(bytes.length).toBe(391);
    expect(toHex(bytes)).toBe(`0x${PAYMENT_HEX}`);
    expect(Buffer.from(bytes).toString('base64')).toBe(PAYMENT_HEADER);
  });

  it('decodes the Payment vector back to the same fields', () => {
    const decoded = decodeMessage('Payment', Buffer.from(PAYMENT_HEADER, 'base64'));
    expect(decoded).toEqual(vectorPayment);
    expect(decoded.expectedPrice?.pricePerUnit).toBe(1200n);
    expect(decoded.ticketSenderParams?.map((t) => t.senderNonce)).toEqual([1, 2, 3]);
  });

  it('keeps 64-bit prices exact beyond 2^53', () => {
    const price = 2n ** 62n + 12345n;
    const bytes = encodeMessage('PriceInfo', { pricePerUnit: price, pixelsPerUnit: 1n });
    expect(decodeMessage('PriceInfo', bytes).pricePerUnit).toBe(price);
  });

  it('uses go-livepeer field numbers for OrchestratorInfo and its capabilities', () => {
    const bytes = encodeMessage('OrchestratorInfo', {
      transcoder: 'https://o:8935',
      capabilitiesPrices: [{ pricePerUnit: 5n, pixelsPerUnit: 1n, capability: 35, constraint: 'm' }],
      capabilities: {
        bitstring: capabilityBitstring([Capability.LiveVideoToVideo]),
        constraints: { PerCapability: { 35: { models: { m: { warm: true, capacity: 1 } } } } },
      },
      authToken: { token: new Uint8Array([9]), sessionId: 's', expiration: 7n },
    });
    const hex = Buffer.from(bytes).toString('hex');
    // field 1 (transcoder): tag 0x0a; field 33 (capabilities_prices): tag 0x8a 0x02; field 6 (auth_token): 0x32
    expect(hex.startsWith('0a0e68747470733a2f2f6f3a38393335')).toBe(true);
    expect(hex).toContain('8a02');
    expect(hex).toContain('3208');
    const back = decodeMessage('OrchestratorInfo', bytes);
    expect(back.capabilities?.constraints?.PerCapability?.['35']?.models?.m?.warm).toBe(true);
    expect(back.capabilitiesPrices?.[0].constraint).toBe('m');
    expect(hasCapability(back.capabilities?.bitstring, Capability.LiveVideoToVideo)).toBe(true);
    expect(hasCapability(back.capabilities?.bitstring, Capability.TextToImage)).toBe(false);
  });

  it('puts capability n at bit n%64 of word n/64', () => {
    expect(capabilityBitstring([0, 35])).toEqual([(1n << 35n) | 1n]);
    expect(capabilityBitstring([64 + 3])).toEqual([0n, 8n]);
  });

  it('rejects malformed bytes with an error', () => {
    expect(() => decodeMessage('OrchestratorInfo', new Uint8Array([0x0a, 0x50, 0x01]))).toThrow();
  });
});
