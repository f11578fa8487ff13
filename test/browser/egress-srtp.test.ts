// Debian's Chromium and Firefox ESR as WHEP viewers of a bare EgressPeer: which SRTP profile the
// DTLS handshake settles on. The DTLS server picks it from its own preference list. By default the
// gateway answers as DTLS server with AES_CM_128_HMAC_SHA1_80 first (docs/performance.md); with
// LPGW_EGRESS_SRTP=gcm the browser is the server and its own preference decides: Chromium (libwebrtc
// lists CM first, GCM making packets longer) still picks CM, Firefox picks AES-GCM — the case
// the gateway's choice changes.
import type { Browser as Chromium, Page as ChromiumPage } from 'playwright-core';
import type { Browser as Firefox } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EgressPeer, LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import { launchChromium, until } from '../helpers/browser-pages.ts';
import { launchFirefox } from '../helpers/firefox.ts';
import { h264Frames, makeH264Clip, type RtpFrame, sleep } from '../helpers/webrtc-clients.ts';

let chromium: Chromium;
let firefox: Firefox;
let video: RtpFrame[];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  video = h264Frames(await makeH264Clip({ seconds: 2 }), 30);
  chromium = await launchChromium();
  firefox = await launchFirefox();
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  await firefox?.close();
});

afterEach(async () => {
  delete process.env.LPGW_EGRESS_SRTP;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** What both drivers' pages offer: run a function in the page. */
interface AnyPage {
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  close(): Promise<unknown>;
}

/** A recvonly offer from the page's new RTCPeerConnection (kept as window.pc), after gathering. */
function offerFrom(page: AnyPage): Promise<string> {
  return page.evaluate(async () => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    (window as unknown as { pc: RTCPeerConnection }).pc = pc;
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve(null);
      });
      setTimeout(resolve, 3000);
    });
    return pc.localDescription?.sdp ?? '';
  }, undefined);
}

/** Answers the page's offer with an EgressPeer and waits for DTLS. */
async function connect(page: AnyPage): Promise<EgressPeer> {
  cleanups.push(() => page.close());
  const offer = await offerFrom(page);
  expect(offer).toMatch(/^a=setup:actpass/m);
  const egress = await EgressPeer.create(offer, LOOPBACK_NETWORK);
  cleanups.push(() => egress.close());
  await page.evaluate(async (sdp: string) => {
    const { pc } = window as unknown as { pc: RTCPeerConnection };
    await pc.setRemoteDescription({ type: 'answer', sdp });
  }, egress.answerSdp);
  await until('DTLS up', async () => egress.canSend);
  return egress;
}

/** puppeteer's evaluate() is typed differently from playwright's; both take (fn, arg). */
const firefoxPage = async () => (await firefox.newPage()) as unknown as AnyPage;

/** Chromium's view of the connection: its transport and inbound video stats. */
function chromiumStats(page: ChromiumPage) {
  return page.evaluate(async () => {
    const { pc } = window as unknown as { pc: RTCPeerConnection };
    const out = { srtpCipher: '', dtlsRole: '', framesDecoded: 0 };
    for (const report of (await pc.getStats()).values()) {
      if (report.type === 'transport') {
        out.srtpCipher = report.srtpCipher ?? '';
        out.dtlsRole = report.dtlsRole ?? '';
      }
      if (report.type === 'inbound-rtp' && report.kind === 'video')
        out.framesDecoded = report.framesDecoded ?? 0;
    }
    return out;
  });
}

/** Chromium watches the clip (H.264, in real time) until it has decoded a second of it. */
async function chromiumWatches() {
  const page = await chromium.newPage();
  const egress = await connect(page);
  let seq = 0;
  for (const frame of video) {
    for (const { payload, marker } of frame.payloads)
      egress.sendVideo(payload, seq++, frame.timestamp, marker);
    await sleep(33);
  }
  await until('frames decoded', async () => (await chromiumStats(page)).framesDecoded >= 30);
  return { egress, stats: await chromiumStats(page) };
}

describe('SRTP profile a browser viewer gets', () => {
  it('Chromium gets AES_CM_128_HMAC_SHA1_80 as DTLS client of the gateway, and decodes the frames', async () => {
    const { egress, stats } = await chromiumWatches();
    expect(egress.answerSdp).toMatch(/^a=setup:passive/m);
    expect(egress.srtpProfile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(egress.videoSendPath).toBe('direct');
    expect(stats).toMatchObject({ srtpCipher: 'SRTP_AES128_CM_HMAC_SHA1_80', dtlsRole: 'client' });
  }, 60_000);

  it('with LPGW_EGRESS_SRTP=gcm Chromium is the DTLS server, and its own preference is CM', async () => {
    process.env.LPGW_EGRESS_SRTP = 'gcm';
    const { egress, stats } = await chromiumWatches();
    expect(egress.answerSdp).toMatch(/^a=setup:active/m);
    expect(egress.srtpProfile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(stats).toMatchObject({ srtpCipher: 'SRTP_AES128_CM_HMAC_SHA1_80', dtlsRole: 'server' });
  }, 60_000);

  it('Firefox gets AES_CM_128_HMAC_SHA1_80 as DTLS client of the gateway', async () => {
    const egress = await connect(await firefoxPage());
    expect(egress.answerSdp).toMatch(/^a=setup:passive/m);
    expect(egress.srtpProfile).toBe('AES_CM_128_HMAC_SHA1_80');
  }, 60_000);

  it('with LPGW_EGRESS_SRTP=gcm Firefox is the DTLS server and picks AES-GCM', async () => {
    process.env.LPGW_EGRESS_SRTP = 'gcm';
    const egress = await connect(await firefoxPage());
    expect(egress.answerSdp).toMatch(/^a=setup:active/m);
    expect(egress.srtpProfile).toBe('AEAD_AES_128_GCM');
  }, 60_000);
});
