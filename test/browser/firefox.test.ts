// The pages in Debian's Firefox ESR, a WebRTC peer no one here wrote, driven over WebDriver BiDi.
// Offline, Firefox has no OpenH264 plugin: it sends and receives VP8, VP9 and AV1 only. The gateway
// transcodes its VP8 to H.264 and plays streams to it as VP8 (docs/codecs.md): these tests publish
// and watch from Firefox, and keep the captured offers in test/webrtc/fixtures/ true to life.
import { readFileSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCRtpCodecParameters, RTCPeerConnection as WeriftPeer } from 'werift';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import { weriftNetworkConfig } from '../../src/webrtc/network.ts';
import {
  instrumentMedia,
  type MissingDevice,
  mediaReport,
  startH264Publisher,
  until,
} from '../helpers/browser-pages.ts';
import { launchFirefox } from '../helpers/firefox.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let firefox: Browser;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    defaultModel: 'passthrough',
    limits: { ingestTimeoutMs: 10_000 },
  });
  await gw.pool.refresh();
  firefox = await launchFirefox();
}, 60_000);

afterAll(async () => {
  await firefox?.close();
  await gw?.close();
  await orch?.close();
});

async function openPage(path: string, missing: MissingDevice = 'none'): Promise<Page> {
  const page = await firefox.newPage();
  await page.evaluateOnNewDocument(instrumentMedia, missing);
  await page.goto(`${gw.base}${path}`);
  return page;
}

const text = (page: Page, selector: string) => page.$eval(selector, (e) => e.textContent ?? '');

function untilText(page: Page, selector: string, wanted: string, timeoutMs = 20_000) {
  return until(
    `${selector} to say ${wanted}`,
    async () => (await text(page, selector)).includes(wanted),
    timeoutMs,
    () => text(page, selector),
  );
}

/** An offer's shape: what a parser must cope with, without the per-run values. */
function shape(sdp: string) {
  const lines = sdp.split('\r\n');
  const firstMedia = lines.findIndex((l) => l.startsWith('m='));
  const session = lines.slice(0, firstMedia);
  const sections: string[][] = [];
  for (const line of lines.slice(firstMedia)) {
    if (line.startsWith('m=')) sections.push([]);
    sections[sections.length - 1].push(line);
  }
  const value = (ls: string[], prefix: string) =>
    ls.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
  const ice = (ls: string[]) => `${value(ls, 'a=ice-ufrag:')[0]}/${value(ls, 'a=ice-pwd:')[0]}`;
  return {
    crlf: !/[^\r]\n/.test(sdp),
    sessionFingerprint: value(session, 'a=fingerprint:').map((f) => f.split(' ')[0]),
    bundle: value(session, 'a=group:'),
    sections: sections.map((s) => ({
      media: s[0].split(' ')[0],
      codecs: value(s, 'a=rtpmap:').map((r) => r.split(' ')[1]),
      direction: s.find((l) => /^a=(send|recv)(only|recv)$|^a=inactive$/.test(l)),
      mid: value(s, 'a=mid:')[0],
      fingerprintInSection: value(s, 'a=fingerprint:').length > 0,
      // 'same': this section repeats the first section's ICE credentials; 'own': its own.
      ice: ice(s) === ice(sections[0]) ? 'same' : 'own',
      endOfCandidates: s.includes('a=end-of-candidates'),
    })),
  };
}

describe('the pages in Firefox ESR', () => {
  it('offers what the fixtures hold: VP8/VP9/AV1, fingerprint at session level, one ICE ufrag for the bundle', async () => {
    const page = await openPage('/status.html');
    const offers = await page.evaluate(async () => {
      const offer = async (pc: RTCPeerConnection) => {
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((resolve) => {
          if (pc.iceGatheringState === 'complete') resolve(null);
          pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') resolve(null);
          });
          setTimeout(resolve, 3000);
        });
        const sdp = pc.localDescription?.sdp ?? '';
        pc.close();
        return sdp;
      };
      const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const whip = new RTCPeerConnection({ iceServers: [] });
      for (const t of media.getTracks()) whip.addTransceiver(t, { direction: 'sendonly', streams: [media] });
      const whep = new RTCPeerConnection({ iceServers: [] });
      whep.addTransceiver('video', { direction: 'recvonly' });
      whep.addTransceiver('audio', { direction: 'recvonly' });
      const result = { whip: await offer(whip), whep: await offer(whep) };
      for (const t of media.getTracks()) t.stop();
      return result;
    });
    for (const kind of ['whip', 'whep'] as const) {
      const file = new URL(`../webrtc/fixtures/firefox-esr-noh264-${kind}-offer.sdp`, import.meta.url);
      // CAPTURE_FIREFOX_FIXTURES=1 rewrites the fixtures from this Firefox (after an upgrade, say).
      if (process.env.CAPTURE_FIREFOX_FIXTURES === '1') writeFileSync(file, offers[kind]);
      const fixture = readFileSync(file, 'utf8');
      expect(shape(offers[kind])).toEqual(shape(fixture));
    }
    const whip = shape(offers.whip);
    expect(whip.sessionFingerprint).toEqual(['sha-256']);
    expect(whip.bundle).toEqual(['BUNDLE 0 1']);
    expect(whip.sections.map((s) => [s.media, s.direction, s.fingerprintInSection])).toEqual([
      ['m=audio', 'a=sendonly', false],
      ['m=video', 'a=sendonly', false],
    ]);
    expect(whip.sections.map((s) => s.ice)).toEqual(['same', 'same']);
    expect(whip.sections[1].codecs).toEqual([
      'VP8/90000',
      'rtx/90000',
      'VP9/90000',
      'rtx/90000',
      'AV1/90000',
      'rtx/90000',
      'ulpfec/90000',
      'red/90000',
      'rtx/90000',
    ]);
    const whep = shape(offers.whep);
    expect(whep.sections.map((s) => [s.media, s.direction])).toEqual([
      ['m=video', 'a=recvonly'],
      ['m=audio', 'a=recvonly'],
    ]);
    await page.close();
  }, 60_000);

  it('the harness: Firefox connects to a werift peer on 127.0.0.1 and its VP8 arrives', async () => {
    // What a VP8-ingesting gateway will meet. Firefox 153 offered no 127.0.0.1 candidate here
    // (only eth0's addresses, media.peerconnection.ice.loopback notwithstanding), yet it reaches a
    // peer that offers only 127.0.0.1.
    const page = await openPage('/status.html');
    const offer = await page.evaluate(async () => {
      const media = await navigator.mediaDevices.getUserMedia({ video: true });
      const pc = new RTCPeerConnection({ iceServers: [] });
      pc.addTransceiver(media.getVideoTracks()[0], { direction: 'sendonly' });
      (window as unknown as { pc: RTCPeerConnection }).pc = pc;
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve(null);
        });
        setTimeout(resolve, 3000);
      });
      return pc.localDescription?.sdp ?? '';
    });
    const peer = new WeriftPeer({
      ...weriftNetworkConfig(LOOPBACK_NETWORK),
      bundlePolicy: 'max-bundle',
      codecs: { video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000 })], audio: [] },
    });
    try {
      let packets = 0;
      peer.onTransceiverAdded.subscribe((t) =>
        t.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => packets++)),
      );
      await peer.setRemoteDescription({ type: 'offer', sdp: offer });
      await peer.setLocalDescription(await peer.createAnswer());
      await until('werift’s candidates', async () => peer.iceGatheringState === 'complete');
      const answer = peer.localDescription?.sdp ?? '';
      expect(answer).toContain(' 127.0.0.1 ');
      await page.evaluate(async (sdp) => {
        const { pc } = window as unknown as { pc: RTCPeerConnection };
        await pc.setRemoteDescription({ type: 'answer', sdp });
      }, answer);
      await until('Firefox connected', async () =>
        page.evaluate(
          () => (window as unknown as { pc: RTCPeerConnection }).pc.connectionState === 'connected',
        ),
      );
      await until('VP8 packets from Firefox', async () => packets > 30);
    } finally {
      await peer.close();
      await page.close();
    }
  }, 60_000);

  it('publishes from Firefox without H.264: its VP8 is transcoded by the gateway and reaches the orchestrator', async () => {
    const page = await openPage('/publish.html?stream=ff-publish&model=passthrough');
    // The page still says what the browser lacks before the camera opens (its wording is the page's).
    await untilText(page, '#codec-note', 'This browser cannot send H.264 video, only VP8, VP9, AV1.');
    expect((await page.evaluate(mediaReport)).asked).toEqual([]);
    await page.click('#start');
    await untilText(page, '#state', 'Publishing “ff-publish”.', 30_000);
    await until(
      'H.264 segments made from Firefox’s VP8 at the orchestrator',
      async () => ((await gw.status('ff-publish')).input?.segments ?? 0) >= 2,
      30_000,
      async () => JSON.stringify((await gw.status('ff-publish')).input),
    );
    expect(await page.$eval('#stream', (i) => (i as HTMLInputElement).readOnly)).toBe(true);
    // Firefox was asked for AES-CM, and its packets went through the gateway's own decryption.
    const { srtp } = (await gw.status('ff-publish')).input.rtp;
    expect(srtp.profile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(srtp.decryptedBy.gateway).toBeGreaterThan(100);
    expect(srtp.decryptedBy.werift).toBeLessThan(10);
    await page.close();
  }, 90_000);

  it('with no microphone, Firefox publishes video only', async () => {
    const page = await openPage('/publish.html?stream=ff-nomic&model=passthrough', 'microphone');
    await page.click('#start');
    await untilText(page, '#state', 'Publishing “ff-nomic”.', 30_000);
    expect(await text(page, '#media-note')).toBe('No microphone found: publishing video only.');
    const report = await page.evaluate(mediaReport);
    expect(report.tracks).toEqual([{ kind: 'video', state: 'live' }]);
    await page.close();
  }, 90_000);

  it('the watch page waits for the stream, then Firefox plays it as VP8', async () => {
    const page = await openPage('/watch.html?stream=ff-watch');
    await untilText(page, '#state', '“ff-watch” has not started yet.');
    const publisher = await startH264Publisher(`${gw.url('ff-watch', 'whip')}?model=passthrough`);
    try {
      await untilText(page, '#state', 'Playing.', 40_000);
      // Firefox's own count of VP8 frames it received and decoded (RTCInboundRtpStreamStats).
      const inbound = () =>
        page.evaluate(async () => {
          const peers = (window as unknown as { __peers: RTCPeerConnection[] }).__peers;
          for (const pc of peers) {
            for (const r of (await pc.getStats()).values()) {
              if (r.type === 'inbound-rtp' && r.kind === 'video')
                return `${r.packetsReceived ?? 0} packets, ${r.framesDecoded ?? 0} frames decoded`;
            }
          }
          return 'no inbound video';
        });
      await until(
        'frames decoded in Firefox',
        async () => {
          const said = await inbound();
          const decoded = Number(/(\d+) frames decoded/.exec(said)?.[1] ?? 0);
          return decoded > 10;
        },
        30_000,
        inbound,
      );
      expect((await gw.status('ff-watch')).viewers).toBe(1);
    } finally {
      await publisher.stop();
    }
    await page.close();
  }, 90_000);
});
