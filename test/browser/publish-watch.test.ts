// A person's path, in Debian's Chromium with a fake camera: publish from the publish page, watch
// from the watch page, see the effect in the pixels, switch it from the page's controls.
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { launchChromium } from '../helpers/browser-pages.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let browser: Browser;
let base: string;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough', 'invert', 'edges', 'grayscale']);
  gw = await startTestGateway({ orchestrators: [orch.url], logger, limits: { ingestTimeoutMs: 10_000 } });
  base = gw.base;
  // A running gateway has asked its orchestrators by the time a person opens a page.
  await gw.pool.refresh();
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await orch?.close();
});

/** Mean R, G, B of what a <video> element shows right now, drawn through a canvas. */
function videoColor(page: Page, selector: string): Promise<[number, number, number] | null> {
  return page.evaluate((sel) => {
    const video = document.querySelector(sel) as HTMLVideoElement | null;
    if (!video || video.readyState < 2 || !video.videoWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 36;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) return null;
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const sum = [0, 0, 0];
    for (let i = 0; i < data.length; i += 4) {
      sum[0] += data[i];
      sum[1] += data[i + 1];
      sum[2] += data[i + 2];
    }
    const n = data.length / 4;
    return [sum[0] / n, sum[1] / n, sum[2] / n] as [number, number, number];
  }, selector);
}

async function until<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Distance of `out` from the colour negative of `input`, and from `input` itself. */
function distances(input: number[], out: number[]) {
  let toNegative = 0;
  let toSame = 0;
  for (let i = 0; i < 3; i++) {
    toNegative += Math.abs(255 - input[i] - out[i]);
    toSame += Math.abs(input[i] - out[i]);
  }
  return { toNegative: toNegative / 3, toSame: toSame / 3 };
}

describe('in the browser', () => {
  it('publishes a camera from the publish page; the watch page plays it with the effect', async () => {
    const publisher = await browser.newPage();
    const errors: string[] = [];
    publisher.on('pageerror', (e) => errors.push(e.message));
    await publisher.goto(`${base}/publish.html?stream=browser1&model=invert`);
    await publisher.click('#start');
    await until('publishing', async () =>
      ((await publisher.textContent('#state')) ?? '').includes('Publishing'),
    ).catch(async (e) => {
      throw new Error(`${e.message}: page says "${await publisher.textContent('#state')}"`);
    });

    const watcher = await browser.newPage();
    await watcher.goto(`${base}/watch.html?stream=browser1`);
    await until('the watch page to play', async () => (await watcher.textContent('#state')) === 'Playing.');
    const progressed = await until('video time to advance', async () => {
      const t0 = await watcher.evaluate(
        () => (document.getElementById('video') as HTMLVideoElement).currentTime,
      );
      await new Promise((r) => setTimeout(r, 1000));
      const t1 = await watcher.evaluate(
        () => (document.getElementById('video') as HTMLVideoElement).currentTime,
      );
      return t1 > t0 + 0.5 ? t1 : null;
    });
    expect(progressed).toBeGreaterThan(0);

    // The fake camera's picture, and its negative at the viewer.
    const inverted = await until('inverted output', async () => {
      const input = await videoColor(publisher, '#input');
      const output = await videoColor(watcher, '#video');
      if (!input || !output) return null;
      const d = distances(input, output);
      return d.toNegative < 30 && d.toSame > 60 ? d : null;
    });
    expect(inverted.toNegative).toBeLessThan(30);

    // Switch the effect from the publish page's controls.
    await publisher.selectOption('#effect', 'passthrough');
    await publisher.click('#apply');
    await until('the applied message', async () =>
      ((await publisher.textContent('#state')) ?? '').includes('Applied'),
    );
    const plain = await until('passthrough output', async () => {
      const input = await videoColor(publisher, '#input');
      const output = await videoColor(watcher, '#video');
      if (!input || !output) return null;
      const d = distances(input, output);
      return d.toSame < 30 ? d : null;
    });
    expect(plain.toSame).toBeLessThan(30);

    const status = await (await fetch(`${base}/live/video-to-video/browser1/status`)).json();
    expect(status.viewers).toBe(2); // the publish page's own preview and the watch page
    // Chromium's fake camera slows down on a busy machine (the suite runs two files at once).
    expect(status.input.fps).toBeGreaterThan(5);
    // Chromium was asked for AES-CM, and its packets went through the gateway's own decryption.
    expect(status.input.rtp.srtp.profile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(status.input.rtp.srtp.decryptedBy.gateway).toBeGreaterThan(100);
    expect(status.input.rtp.srtp.decryptedBy.werift).toBeLessThan(10);

    await publisher.click('#stop');
    await until(
      'the stream to end',
      async () =>
        (await (await fetch(`${base}/live/video-to-video/browser1/status`)).json()).state === 'ended',
    );
    expect(errors).toEqual([]);
    await watcher.close();
    await publisher.close();
  }, 90_000);
});
