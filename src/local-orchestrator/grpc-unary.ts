// A unary gRPC endpoint served from an HTTP/2 compat request, so that gRPC and HTTPS
// share one TLS port as they do on a go-livepeer orchestrator. (@grpc/grpc-js's server
// owns its listener and cannot share a port.) Wire format: 1-byte compressed flag,
// 4-byte big-endian length, message; status in trailers.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export const GrpcCode = {
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export function isGrpcRequest(req: { headers: Record<string, unknown> }): boolean {
  const type = req.headers['content-type'];
  return typeof type === 'string' && type.startsWith('application/grpc');
}

export async function serveUnary(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  handlers: Record<string, (message: Uint8Array) => Promise<Uint8Array>>,
): Promise<void> {
  const handler = handlers[req.url];
  try {
    if (!handler) throw new GrpcStatusError(GrpcCode.UNIMPLEMENTED, `unknown method ${req.url}`);
    const body = await readBody(req);
    if (body.length < 5) throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'truncated gRPC frame');
    if (body[0] !== 0)
      throw new GrpcStatusError(GrpcCode.UNIMPLEMENTED, 'compressed messages are not supported');
    const length = body.readUInt32BE(1);
    if (length !== body.length - 5)
      throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'bad gRPC frame length');
    const reply = await handler(body.subarray(5));
    const frame = Buffer.alloc(5 + reply.length);
    frame.writeUInt32BE(reply.length, 1);
    frame.set(reply, 5);
    res.writeHead(200, { 'content-type': 'application/grpc+proto' });
    res.addTrailers({ 'grpc-status': '0', 'grpc-message': '' });
    res.end(frame);
  } catch (err) {
    const code = err instanceof GrpcStatusError ? err.code : GrpcCode.INTERNAL;
    // Trailers-only response: one HEADERS frame that carries the status and ends the stream.
    res.stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc+proto',
        'grpc-status': String(code),
        'grpc-message': grpcPercentEncode((err as Error).message),
      },
      { endStream: true },
    );
  }
}

async function readBody(req: Http2ServerRequest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_MESSAGE_BYTES) throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'message too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The gRPC spec's percent-encoding for grpc-message: only '%' and bytes outside 0x20–0x7E are
 * encoded (encodeURIComponent also encodes ':' and the like, which clients do not decode back).
 */
export function grpcPercentEncode(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
