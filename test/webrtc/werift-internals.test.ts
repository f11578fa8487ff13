// The werift internals the shared ICE ports and ICE restarts rely on (src/webrtc/werift-ice.ts).
// When a werift upgrade moves one of them, this file says which, before any media test times out.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RTCIceParameters,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  StunProtocol,
  TcpPassiveProtocol,
} from 'werift';
import { IcePorts } from '../../src/webrtc/ice-ports.ts';
import { assertWeriftIceInternals, WeriftInternalsError } from '../../src/webrtc/werift-ice.ts';
import { WeriftPublisher } from '../helpers/webrtc-clients.ts';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An answering peer connection with its ICE agent created (as PeerSession has it before the answer). */
async function answeringAgent() {
  const publisher = new WeriftPublisher({ audio: false });
  closers.push(() => publisher.close());
  const offer = await publisher.createOffer();
  const pc = new RTCPeerConnection({
    iceUseIpv4: false,
    iceUseIpv6: false,
    bundlePolicy: 'max-compat',
    codecs: { video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000 })], audio: [] },
  });
  closers.push(() => pc.close());
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  const [transport] = pc.iceTransports;
  return { pc, transport };
}

describe('werift ICE internals', () => {
  it('is the werift version the shared ports were written against', () => {
    const file = resolve(import.meta.dirname, '..', '..', 'node_modules', 'werift', 'package.json');
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version: string };
    // A new minor version: re-read ice.js (gatherCandidates, ensureProtocol, restart) and this file.
    expect(pkg.version).toMatch(/^0\.24\./);
  });

  it("has the private members we reach: Connection.protocols/ensureProtocol/userHistory, the protocols' receive paths", async () => {
    const { transport } = await answeringAgent();
    expect(() => assertWeriftIceInternals(transport.connection)).not.toThrow();
    expect(typeof (StunProtocol.prototype as unknown as Record<string, unknown>).datagramReceived).toBe(
      'function',
    );
    expect(typeof (TcpPassiveProtocol.prototype as unknown as Record<string, unknown>).registerSocket).toBe(
      'function',
    );
    // And it does fail loudly, naming what is missing.
    const fake = { ...transport.connection, protocols: undefined } as unknown as typeof transport.connection;
    expect(() => assertWeriftIceInternals(fake)).toThrow(WeriftInternalsError);
    expect(() => assertWeriftIceInternals(fake)).toThrow(/Connection\.protocols is not an array/);
  });

  it('advertises protocols added to Connection.protocols when gathering, and again after restart()', async () => {
    const ports = await IcePorts.open({ udp: { host: '127.0.0.1', port: 0 } });
    closers.push(() => ports.close());
    const { pc, transport } = await answeringAgent();
    const attachment = ports.attach(transport.connection);
    await pc.setLocalDescription(await pc.createAnswer());
    const first = transport.localCandidates;
    expect(first.map((c) => `${c.protocol} ${c.ip}:${c.port}`)).toEqual([`udp 127.0.0.1:${ports.udp!.port}`]);
    expect(transport.localParameters.usernameFragment).toBe(attachment.ufrag);
    expect(pc.localDescription!.sdp).toContain(`a=ice-ufrag:${attachment.ufrag}`);

    // The restart path PeerSession takes: restart(), then the remote's new credentials (without a
    // second restart), our new ones, and gathering re-announces the same shared socket.
    const restarts = transport.iceRestarts;
    transport.restart();
    transport.setRemoteParams(
      new RTCIceParameters({
        usernameFragment: 'newRemote',
        password: 'newRemotePasswordnewRemote',
        iceLite: false,
      }),
    );
    expect(transport.iceRestarts).toBe(restarts + 1);
    expect(transport.connection.remoteUsername).toBe('newRemote');
    const renewed = attachment.renew();
    await transport.gather();
    expect(transport.localParameters.usernameFragment).toBe(renewed.ufrag);
    const again = transport.localCandidates;
    expect(again.map((c) => `${c.protocol} ${c.ip}:${c.port} ${c.ufrag}`)).toEqual([
      `udp 127.0.0.1:${ports.udp!.port} ${renewed.ufrag}`,
    ]);
    expect(ports.peers).toBe(1);
    await pc.close();
    expect(ports.peers).toBe(0); // werift closing its protocols gives the place back
  });
});
