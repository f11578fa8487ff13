// Debian's Chromium (a fake camera) against the gateway on the shared ICE ports: publishing and
// watching with every UDP candidate taken out (ICE-TCP only), and an ICE restart done the way a
// browser WHIP client does it (restartIce, PATCH with the new ufrag/pwd, the answer rebuilt from
// the 200 fragment) while a viewer keeps receiving frames. libwebrtc checks USERNAME and
// MESSAGE-INTEGRITY strictly, which werift clients do not.
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { IcePorts, LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import { launchChromium } from '../helpers/browser-pages.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import { WhepTestViewer } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let ports: IcePorts;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let browser: Browser;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  ports = await IcePorts.open({ udp: { host: '127.0.0.1', port: 0 }, tcp: { host: '127.0.0.1', port: 0 } });
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    network: { ...LOOPBACK_NETWORK, ports },
    limits: { ingestTimeoutMs: 10_000 },
    defaultModel: 'passthrough',
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await ports?.close();
  await orch?.close();
});

/** A page on the gateway's origin with WHIP/WHEP helpers on `window.lp`. */
async function openPage(): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${gw.base}/status.html`);
  await page.evaluate(() => {
    type Peer = { pc: RTCPeerConnection; resource: string; etag: string; answer: string };
    const peers: Record<string, Peer> = {};
    const gathered = (pc: RTCPeerConnection) =>
      new Promise<void>((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
      });
    const connected = (pc: RTCPeerConnection) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pc.connectionState === 'connected') resolve();
          else if (pc.connectionState === 'failed') reject(new Error('connection failed'));
        };
        pc.addEventListener('connectionstatechange', check);
        check();
      });
    const keep = (tcpOnly: boolean) => (line: string) =>
      !(tcpOnly && line.startsWith('a=candidate:') && / udp /i.test(line));
    const filter = (sdp: string, tcpOnly: boolean) => sdp.split('\r\n').filter(keep(tcpOnly)).join('\r\n');

    async function start(name: string, url: string, kind: 'whip' | 'whep', tcpOnly: boolean) {
      const pc = new RTCPeerConnection();
      if (kind === 'whip') {
        const media = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
        for (const track of media.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
      } else {
        pc.addTransceiver('video', { direction: 'recvonly' });
      }
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp' },
        body: filter(pc.localDescription!.sdp, tcpOnly),
      });
      if (res.status !== 201) throw new Error(`POST ${res.status}: ${await res.text()}`);
      const answer = filter(await res.text(), tcpOnly);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      peers[name] = {
        pc,
        resource: new URL(res.headers.get('location')!, url).href,
        etag: res.headers.get('etag')!,
        answer,
      };
      await connected(pc);
    }

    /** The selected pair's local candidate protocol and our ICE ufrag, from getStats. */
    async function selected(name: string) {
      const stats = await peers[name].pc.getStats();
      let result: Record<string, number | string | undefined> = {};
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          const pair = stats.get(s.selectedCandidatePairId);
          result = {
            ...result,
            protocol: stats.get(pair.localCandidateId)?.protocol,
            ufrag: s.iceLocalUsernameFragment,
            pairId: s.selectedCandidatePairId,
            // Checks from the gateway that Chromium found valid (USERNAME, MESSAGE-INTEGRITY).
            responsesSent: pair.responsesSent,
          };
        }
        if (s.type === 'inbound-rtp' && s.kind === 'video') result.framesDecoded = s.framesDecoded;
        if (s.type === 'outbound-rtp' && s.kind === 'video') result.framesSent = s.framesSent;
      });
      return result;
    }

    /** RFC 9725 §4.3.3 as a browser client does it. */
    async function restart(name: string) {
      const peer = peers[name];
      peer.pc.restartIce();
      await peer.pc.setLocalDescription(await peer.pc.createOffer());
      await gathered(peer.pc);
      const offer = peer.pc.localDescription!.sdp.split('\r\n');
      const first = offer.findIndex((l) => l.startsWith('m='));
      const section = offer.slice(first, offer.findIndex((l, i) => i > first && l.startsWith('m=')) >>> 0);
      const pick = (prefix: string) => section.filter((l) => l.startsWith(prefix));
      const body = [
        offer[first],
        ...pick('a=mid:'),
        ...pick('a=ice-ufrag:'),
        ...pick('a=ice-pwd:'),
        ...pick('a=candidate:'),
        'a=end-of-candidates',
        '',
      ].join('\r\n');
      const res = await fetch(peer.resource, {
        method: 'PATCH',
        headers: { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': '*' },
        body,
      });
      const frag = await res.text();
      if (res.status !== 200) throw new Error(`PATCH ${res.status}: ${frag}`);
      const lines = frag.split('\r\n');
      const value = (prefix: string) => lines.find((l) => l.startsWith(prefix))!;
      const candidates = lines.filter((l) => l.startsWith('a=candidate:'));
      // The previous answer with the new ICE information: nothing else is renegotiated.
      const answer: string[] = [];
      for (const line of peer.answer.split('\r\n')) {
        if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
        if (line.startsWith('a=ice-ufrag:')) answer.push(value('a=ice-ufrag:'));
        else if (line.startsWith('a=ice-pwd:'))
          answer.push(value('a=ice-pwd:'), ...candidates, 'a=end-of-candidates');
        else answer.push(line);
      }
      peer.answer = answer.join('\r\n');
      await peer.pc.setRemoteDescription({ type: 'answer', sdp: peer.answer });
      const oldEtag = peer.etag;
      peer.etag = res.headers.get('etag')!;
      return { etag: peer.etag, oldEtag, contentType: res.headers.get('content-type') };
    }

    async function stop(name: string) {
      const peer = peers[name];
      await fetch(peer.resource, { method: 'DELETE' });
      peer.pc.close();
    }

    Object.assign(window, { lp: { start, selected, restart, stop } });
  });
  return page;
}

type Selected = {
  protocol?: string;
  ufrag?: string;
  pairId?: string;
  responsesSent?: number;
  framesDecoded?: number;
  framesSent?: number;
};
/** What openPage() puts on `window.lp`, as the test calls it. */
type PageHelpers = {
  lp: {
    start(name: string, url: string, kind: 'whip' | 'whep', tcpOnly: boolean): Promise<void>;
    selected(name: string): Promise<Selected>;
    restart(name: string): Promise<{ etag: string; oldEtag: string; contentType: string }>;
    stop(name: string): Promise<void>;
  };
};
const lp = (page: Page) => ({
  start: (name: string, url: string, kind: 'whip' | 'whep', tcpOnly: boolean) =>
    page.evaluate(([n, u, k, t]) => (window as unknown as PageHelpers).lp.start(n, u, k, t), [
      name,
      url,
      kind,
      tcpOnly,
    ] as const),
  selected: (name: string): Promise<Selected> =>
    page.evaluate((n) => (window as unknown as PageHelpers).lp.selected(n), name),
  restart: (name: string): Promise<{ etag: string; oldEtag: string; contentType: string }> =>
    page.evaluate((n) => (window as unknown as PageHelpers).lp.restart(n), name),
  stop: (name: string) => page.evaluate((n) => (window as unknown as PageHelpers).lp.stop(n), name),
});

describe('Chromium on the shared ICE ports', () => {
  it('publishes and watches with ICE-TCP only (no UDP candidate either way)', async () => {
    const page = await openPage();
    const c = lp(page);
    const adoptedBefore = ports.stats().tcp!.adopted;
    try {
      await c.start('pub', gw.url('chrome-tcp', 'whip'), 'whip', true);
      await c.start('view', gw.url('chrome-tcp', 'whep'), 'whep', true);
      expect((await c.selected('pub')).protocol).toBe('tcp');
      expect((await c.selected('view')).protocol).toBe('tcp');
      let decoded = 0;
      await waitFor(
        async () => {
          decoded = (await c.selected('view')).framesDecoded ?? 0;
          return decoded >= 60;
        },
        'Chromium to decode frames received over TCP',
        30_000,
      );
      expect(ports.stats().tcp!.adopted - adoptedBefore).toBeGreaterThanOrEqual(2);
      await c.stop('view');
      await c.stop('pub');
    } finally {
      await page.close();
    }
  }, 60_000);

  it("restarts ICE the way a browser WHIP client does, and the viewer's frames keep coming", async () => {
    const page = await openPage();
    const c = lp(page);
    let viewer: WhepTestViewer | undefined;
    try {
      await c.start('pub', gw.url('chrome-restart', 'whip'), 'whip', false);
      viewer = await WhepTestViewer.connect(gw.url('chrome-restart', 'whep'));
      await waitFor(() => viewer!.frames.length >= 30, 'frames before the restart', 30_000);
      const before = await c.selected('pub');
      const result = await c.restart('pub');
      expect(result.contentType).toBe('application/trickle-ice-sdpfrag');
      expect(result.etag).not.toBe(result.oldEtag);
      // Chromium's ICE agent is on its new credentials, and answers the gateway's checks, which
      // name Chromium's new ufrag and are signed with its new password.
      await waitFor(
        async () => {
          const now = await c.selected('pub');
          return (
            now.ufrag !== undefined &&
            now.ufrag !== before.ufrag &&
            now.pairId !== before.pairId &&
            (now.responsesSent ?? 0) > 0
          );
        },
        "Chromium's ICE to connect on the new credentials",
        15_000,
      );
      const mark = viewer.frames.length;
      await waitFor(() => viewer!.frames.length >= mark + 60, 'frames after the restart', 30_000);
      const status = await gw.status('chrome-restart');
      expect(status.state).toBe('live');
      expect(status.viewers).toBe(1);
      await c.stop('pub');
    } finally {
      await viewer?.close();
      await page.close();
    }
  }, 90_000);
});
