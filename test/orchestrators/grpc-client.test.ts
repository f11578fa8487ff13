// GetOrchestrator failures become typed OrchestratorErrors, whatever the orchestrator does wrong.
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../../src/local-orchestrator/tls.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { encodeMessage } from '../../src/wire/lp-rpc.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** An HTTP/2 TLS server whose gRPC answer is `reply` (a framed message, or trailers-only with a status). */
async function fakeOrchestrator(reply: { message?: Uint8Array; status?: number; statusMessage?: string }) {
  const server = http2.createSecureServer(await selfSignedCertificate('127.0.0.1'), (req, res) => {
    req.resume();
    req.on('end', () => {
      if (reply.message) {
        const frame = Buffer.alloc(5 + reply.message.length);
        frame.writeUInt32BE(reply.message.length, 1);
        frame.set(reply.message, 5);
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.addTrailers({ 'grpc-status': '0' });
        res.end(frame);
      } else {
        res.stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': String(reply.status),
            'grpc-message': reply.statusMessage ?? '',
          },
          { endStream: true },
        );
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function expectKind(promise: Promise<unknown>, kind: OrchestratorError['kind']) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OrchestratorError);
  expect((err as OrchestratorError).kind).toBe(kind);
  return err as OrchestratorError;
}

const opts = { identity: offchainIdentity, timeoutMs: 1500 };

describe('GetOrchestrator client', () => {
  it('reports an orchestrator that is not listening as unreachable', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    const err = await expectKind(getOrchestrator(`https://127.0.0.1:${port}`, opts), 'unreachable');
    expect(err.message).toContain(`127.0.0.1:${port}`);
  });

  it('gives up after the timeout when the orchestrator never answers', async () => {
    const silent = net.createServer(() => {}); // accepts, never speaks TLS
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    closers.push(() => silent.close());
    const url = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const err = await expectKind(getOrchestrator(url, { ...opts, timeoutMs: 500 }), 'timeout');
    expect(err.message).toMatch(/timed out/);
  });

  it('rejects a reply that is not an OrchestratorInfo', async () => {
    const url = await fakeOrchestrator({ message: new Uint8Array([0x0a, 0x7f, 0x01]) });
    await expectKind(getOrchestrator(url, opts), 'invalid-reply');
  });

  it('rejects an OrchestratorInfo without a usable transcoder URL', async () => {
    const url = await fakeOrchestrator({
      message: encodeMessage('OrchestratorInfo', { transcoder: 'not a url' }),
    });
    const err = await expectKind(getOrchestrator(url, opts), 'invalid-reply');
    expect(err.message).toMatch(/transcoder/);
  });

  it('rejects a negative price', async () => {
    const message = encodeMessage('OrchestratorInfo', {
      transcoder: 'https://127.0.0.1:1',
      priceInfo: { pricePerUnit: -5n, pixelsPerUnit: 1n },
    });
    const err = await expectKind(getOrchestrator(await fakeOrchestrator({ message }), opts), 'invalid-reply');
    expect(err.message).toMatch(/negative price/);
  });

  it('passes on the reason when the orchestrator refuses', async () => {
    const url = await fakeOrchestrator({ status: 3, statusMessage: 'insufficient%20sender%20reserve' });
    const err = await expectKind(getOrchestrator(url, opts), 'refused');
    expect(err.message).toContain('insufficient sender reserve');
  });
});
