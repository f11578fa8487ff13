// Codec for Livepeer's wire messages (proto/lp_rpc.proto). Field names are the
// camelCase forms of the proto names; 64-bit integers are bigint, bytes are Uint8Array.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const protoPath = fileURLToPath(new URL('../../proto/lp_rpc.proto', import.meta.url));
const root = protobuf.loadSync(protoPath);

export interface PriceInfo {
  pricePerUnit?: bigint;
  pixelsPerUnit?: bigint;
  capability?: number;
  constraint?: string;
}
export interface ModelConstraint {
  warm?: boolean;
  capacity?: number;
  runnerVersion?: string;
  capacityInUse?: number;
}
export interface Capabilities {
  bitstring?: bigint[];
  mandatories?: bigint[];
  capacities?: Record<string, number>;
  version?: string;
  constraints?: {
    minVersion?: string;
    PerCapability?: Record<string, { models?: Record<string, ModelConstraint> }>;
  };
}
export interface AuthToken {
  token?: Uint8Array;
  sessionId?: string;
  expiration?: bigint;
}
export interface TicketExpirationParams {
  creationRound?: bigint;
  creationRoundBlockHash?: Uint8Array;
}
export interface TicketParams {
  recipient?: Uint8Array;
  faceValue?: Uint8Array;
  winProb?: Uint8Array;
  recipientRandHash?: Uint8Array;
  seed?: Uint8Array;
  expirationBlock?: Uint8Array;
  expirationParams?: TicketExpirationParams;
}
export interface TicketSenderParams {
  senderNonce?: number;
  sig?: Uint8Array;
}
export interface Payment {
  ticketParams?: TicketParams;
  sender?: Uint8Array;
  expirationParams?: TicketExpirationParams;
  ticketSenderParams?: TicketSenderParams[];
  expectedPrice?: PriceInfo;
}
export interface HardwareInformation {
  pipeline?: string;
  modelId?: string;
  gpuInfo?: Record<string, { id?: string; name?: string; major?: number; minor?: number }>;
}
export interface OrchestratorInfo {
  transcoder?: string;
  ticketParams?: TicketParams;
  priceInfo?: PriceInfo;
  address?: Uint8Array;
  capabilities?: Capabilities;
  authToken?: AuthToken;
  hardware?: HardwareInformation[];
  capabilitiesPrices?: PriceInfo[];
  nodes?: string[];
}
export interface OrchestratorRequest {
  address?: Uint8Array;
  sig?: Uint8Array;
  capabilities?: Capabilities;
  ignoreCapacityCheck?: boolean;
}
export interface SegData {
  manifestId?: Uint8Array;
  seq?: bigint;
  hash?: Uint8Array;
  profiles?: Uint8Array;
  sig?: Uint8Array;
  duration?: number;
  capabilities?: Capabilities;
  authToken?: AuthToken;
  calcPerceptualHash?: boolean;
  /** Transcoding profiles; go-livepeer fills exactly one of the three (core/streamdata.go NetSegData). */
  fullProfiles?: VideoProfile[];
  fullProfiles2?: VideoProfile[];
  fullProfiles3?: VideoProfile[];
  segmentParameters?: { from?: bigint; to?: bigint };
  forceSessionReinit?: boolean;
}
/** net.VideoProfile; enums as their numbers (Format, Profile, VideoCodec, ChromaSubsampling). */
export interface VideoProfile {
  name?: string;
  width?: number;
  height?: number;
  /** Bits per second. */
  bitrate?: number;
  fps?: number;
  format?: number;
  fpsDen?: number;
  profile?: number;
  /** Milliseconds; -1 = intra only. */
  gop?: number;
  encoder?: number;
  colorDepth?: number;
  chromaFormat?: number;
  quality?: number;
}
export interface TranscodedSegmentData {
  url?: string;
  pixels?: bigint;
  perceptualHashUrl?: string;
}
export interface TranscodeData {
  segments?: TranscodedSegmentData[];
  sig?: Uint8Array;
}
/** The reply to POST /segment: `error` or `data` (a oneof), and fresh orchestrator info. */
export interface TranscodeResult {
  seq?: bigint;
  error?: string;
  data?: TranscodeData;
  info?: OrchestratorInfo;
}
export interface PaymentResult {
  info?: OrchestratorInfo;
}

interface MessageTypes {
  OrchestratorRequest: OrchestratorRequest;
  OrchestratorInfo: OrchestratorInfo;
  PriceInfo: PriceInfo;
  Capabilities: Capabilities;
  AuthToken: AuthToken;
  TicketParams: TicketParams;
  Payment: Payment;
  SegData: SegData;
  PaymentResult: PaymentResult;
  TranscodeResult: TranscodeResult;
}
export type MessageName = keyof MessageTypes;

const longTypes = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

// protobufjs knows Long and strings, not bigint: convert at the edge, driven by the schema.
function toWire(type: protobuf.Type, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields[key];
    if (v === undefined || v === null || !field) continue;
    out[key] = convertField(
      field,
      v,
      (t, x) => toWire(t, x as Record<string, unknown>),
      (x) => String(x),
    );
  }
  return out;
}

function fromWire(type: protobuf.Type, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields[key];
    if (v === undefined || v === null || !field) continue;
    out[key] = convertField(
      field,
      v,
      (t, x) => fromWire(t, x as Record<string, unknown>),
      (x) => BigInt(x as string),
    );
  }
  return out;
}

function convertField(
  field: protobuf.Field,
  v: unknown,
  message: (t: protobuf.Type, x: unknown) => unknown,
  long: (x: unknown) => unknown,
): unknown {
  field.resolve();
  const one = (x: unknown): unknown => {
    if (field.resolvedType instanceof protobuf.Type) return message(field.resolvedType, x);
    if (longTypes.has(field.type)) return long(x);
    // Plain Uint8Array views rather than Buffers, so values compare equal to what callers build.
    if (x instanceof Uint8Array) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    return x;
  };
  if (field.map) {
    const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, one(x)]);
    return Object.fromEntries(entries);
  }
  if (field.repeated) return (v as unknown[]).map(one);
  return one(v);
}

function lookup(name: MessageName): protobuf.Type {
  return root.lookupType(`net.${name}`);
}

export function encodeMessage<N extends MessageName>(name: N, value: MessageTypes[N]): Uint8Array {
  const type = lookup(name);
  const wire = toWire(type, value as Record<string, unknown>);
  return type.encode(type.fromObject(wire)).finish();
}

/** Throws on malformed bytes (protobufjs's error, message names the problem). */
export function decodeMessage<N extends MessageName>(name: N, bytes: Uint8Array): MessageTypes[N] {
  const type = lookup(name);
  const decoded = type.decode(bytes);
  const plain = type.toObject(decoded, { longs: String, bytes: Uint8Array, arrays: false, objects: false });
  return fromWire(type, plain) as MessageTypes[N];
}

export const GET_ORCHESTRATOR_PATH = '/net.Orchestrator/GetOrchestrator';

/** Capability ids from go-livepeer's core/capabilities.go. */
export const Capability = {
  H264: 0,
  MPEGTS: 1,
  MP4: 2,
  AuthToken: 12,
  TextToImage: 27,
  ImageToImage: 28,
  ImageToVideo: 29,
  Upscale: 30,
  AudioToText: 31,
  SegmentAnything2: 32,
  LLM: 33,
  ImageToText: 34,
  LiveVideoToVideo: 35,
  TextToSpeech: 36,
} as const;

/** go-livepeer's DefaultCapabilities (transcoding basics): its gateways ask every orchestrator for these. */
export const DEFAULT_CAPABILITIES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 26] as const;

/** Capability n is bit n%64 of 64-bit word n/64. */
export function capabilityBitstring(caps: number[]): bigint[] {
  const words: bigint[] = [];
  for (const cap of caps) {
    const word = Math.floor(cap / 64);
    while (words.length <= word) words.push(0n);
    words[word] |= 1n << BigInt(cap % 64);
  }
  return words;
}

export function hasCapability(bitstring: bigint[] | undefined, cap: number): boolean {
  const word = bitstring?.[Math.floor(cap / 64)];
  return word !== undefined && ((word >> BigInt(cap % 64)) & 1n) === 1n;
}
