// GetOrchestrator over gRPC, as go-livepeer's gateway calls it: TLS to the orchestrator's
// self-signed certificate without verifying it, signed request, bounded by a timeout.
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { hexToBytes } from 'viem';
import type { GatewayIdentity } from '../payments/identity.ts';
import {
  type Capabilities,
  decodeMessage,
  encodeMessage,
  GET_ORCHESTRATOR_PATH,
  type OrchestratorInfo,
  type OrchestratorRequest,
} from '../wire/lp-rpc.ts';
import { OrchestratorError } from './errors.ts';

const definition: grpc.ServiceDefinition = {
  GetOrchestrator: {
    path: GET_ORCHESTRATOR_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (req: OrchestratorRequest) => Buffer.from(encodeMessage('OrchestratorRequest', req)),
    requestDeserialize: (buf: Buffer) => decodeMessage('OrchestratorRequest', buf),
    responseSerialize: (info: OrchestratorInfo) => Buffer.from(encodeMessage('OrchestratorInfo', info)),
    responseDeserialize: (buf: Buffer) => decodeMessage('OrchestratorInfo', buf),
  },
};
const OrchestratorClient = grpc.makeGenericClientConstructor(definition, 'net.Orchestrator');
/** Made once: creating TLS credentials loads the root certificates, ~20 ms of blocked event loop. */
let credentials: grpc.ChannelCredentials | undefined;

export interface GetOrchestratorOptions {
  identity: GatewayIdentity;
  capabilities?: Capabilities;
  ignoreCapacityCheck?: boolean;
  timeoutMs: number;
}

/** `orchestrator` is `https://host:port`. Resolves with a validated OrchestratorInfo or rejects with OrchestratorError. */
export async function getOrchestrator(
  orchestrator: string,
  opts: GetOrchestratorOptions,
): Promise<OrchestratorInfo> {
  let target: string;
  try {
    target = new URL(orchestrator).host;
  } catch {
    throw new OrchestratorError('invalid-reply', orchestrator, 'not a valid orchestrator URL');
  }
  const request: OrchestratorRequest = {
    address: hexToBytes(opts.identity.address),
    sig: await opts.identity.signOrchestratorRequest(),
    capabilities: opts.capabilities,
    ignoreCapacityCheck: opts.ignoreCapacityCheck,
  };
  credentials ??= grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false });
  // Certificates are not verified; naming a hostname for SNI only keeps Node from warning about IP literals.
  const options = isIP(new URL(orchestrator).hostname.replace(/^\[|\]$/g, ''))
    ? { 'grpc.ssl_target_name_override': 'localhost' }
    : {};
  const client = new OrchestratorClient(target, credentials, options);
  try {
    const info = await new Promise<OrchestratorInfo>((resolve, reject) => {
      const deadline = Date.now() + opts.timeoutMs;
      client.makeUnaryRequest(
        GET_ORCHESTRATOR_PATH,
        definition.GetOrchestrator.requestSerialize,
        definition.GetOrchestrator.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline },
        (err: grpc.ServiceError | null, value?: OrchestratorInfo) =>
          err ? reject(toOrchestratorError(orchestrator, err)) : resolve(value as OrchestratorInfo),
      );
    });
    return validateInfo(orchestrator, info);
  } finally {
    client.close();
  }
}

function toOrchestratorError(orchestrator: string, err: grpc.ServiceError): OrchestratorError {
  const details = err.details || err.message;
  switch (err.code) {
    case grpc.status.DEADLINE_EXCEEDED:
      return new OrchestratorError('timeout', orchestrator, `GetOrchestrator timed out (${details})`);
    case grpc.status.UNAVAILABLE:
      if (/handshake|certificate|ssl|tls/i.test(details)) {
        return new OrchestratorError('tls', orchestrator, `TLS failed: ${details}`);
      }
      return new OrchestratorError('unreachable', orchestrator, `unreachable: ${connectError(details)}`);
    case grpc.status.INTERNAL:
      if (/parse|decode|deserializ|invalid wire|index out of range/i.test(details)) {
        return new OrchestratorError('invalid-reply', orchestrator, `malformed OrchestratorInfo: ${details}`);
      }
      return new OrchestratorError('refused', orchestrator, details, err.code);
    default:
      return new OrchestratorError('refused', orchestrator, details, err.code);
  }
}

/** grpc-js's "No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note: " → the error. */
function connectError(details: string): string {
  const short = details
    .replace(/^No connection established\. Last error: (Error: )?/, '')
    .replace(/\.?\s*Resolution note:.*$/s, '')
    .trim();
  return short || details;
}

function validateInfo(orchestrator: string, info: OrchestratorInfo): OrchestratorInfo {
  let transcoder: URL;
  try {
    transcoder = new URL(info.transcoder ?? '');
  } catch {
    throw new OrchestratorError('invalid-reply', orchestrator, `transcoder URL is missing or invalid`);
  }
  if (transcoder.protocol !== 'https:' && transcoder.protocol !== 'http:') {
    throw new OrchestratorError(
      'invalid-reply',
      orchestrator,
      `transcoder URL must be http(s): ${info.transcoder}`,
    );
  }
  const price = info.priceInfo;
  if (price && (price.pricePerUnit ?? 0n) < 0n) {
    throw new OrchestratorError('invalid-reply', orchestrator, 'negative price');
  }
  if (price && (price.pricePerUnit ?? 0n) > 0n && (price.pixelsPerUnit ?? 0n) <= 0n) {
    throw new OrchestratorError('invalid-reply', orchestrator, 'pixelsPerUnit must be positive');
  }
  return info;
}
