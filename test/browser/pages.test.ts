// The pages as a person meets them, in Debian's Chromium with a fake camera: what they say, what
// they lock, what they let go of, and what happens when the tab closes.
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import {
  instrumentMedia,
  launchChromium,
  type MissingDevice,
  mediaReport,
  startH264Publisher,
  until,
} from '../helpers/browser-pages.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const MODELS = ['passthrough', 'invert', 'edges', 'grayscale'];
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let browser: Browser;
/** WHIP and WHEP DELETEs the gateway received, as "stream/id". */
const unpublished: string[] = [];
const unviewed: string[] = [];

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, MODELS);
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    defaultModel: 'passthrough',
    limits: { ingestTimeoutMs: 10_000 },
  });
  // A running gateway has asked its orchestrators by the time a person opens a page.
  await gw.pool.refresh();
  const { streams } = gw;
  const unpublish = streams.unpublish.bind(streams);
  streams.unpublish = (stream, id) => {
    unpublished.push(`${stream}/${id}`);
    return unpublish(stream, id);
  };
  const unview = streams.unview.bind(streams);
  streams.unview = (stream, id) => {
    unviewed.push(`${stream}/${id}`);
    return unview(stream, id);
  };
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await orch?.close();
});

async function openPage(path: string, missing: MissingDevice = 'none'): Promise<Page> {
  const page = await browser.newPage();
  await page.addInitScript(instrumentMedia, missing);
  await page.goto(`${gw.base}${path}`);
  return page;
}

const text = async (page: Page, selector: string) => (await page.textContent(selector)) ?? '';

function untilText(page: Page, selector: string, wanted: string | RegExp, timeoutMs = 20_000) {
  return until(
    `${selector} to say ${wanted}`,
    async () => {
      const t = await text(page, selector);
      return typeof wanted === 'string' ? t.includes(wanted) : wanted.test(t);
    },
    timeoutMs,
    () => text(page, selector),
  );
}

const status = async (stream: string) => {
  const res = await fetch(gw.url(stream, 'status'));
  return res.status === 404 ? null : res.json();
};

describe('the pages in Chromium', () => {
  it('serves a favicon, and no page asks for anything that is missing', async () => {
    const ico = await fetch(`${gw.base}/favicon.ico`);
    expect(ico.status).toBe(200);
    expect(ico.headers.get('content-type')).toMatch(/^image\//);
    expect((await ico.arrayBuffer()).byteLength).toBeGreaterThan(100);
    const svg = await fetch(`${gw.base}/favicon.svg`);
    expect(svg.headers.get('content-type')).toMatch(/^image\/svg\+xml/);

    const failed: string[] = [];
    for (const path of ['/', '/publish.html?stream=fav', '/watch.html', '/status.html', '/api.html']) {
      const page = await browser.newPage();
      page.on('response', (r) => {
        // /openapi.json comes with the batch routes, which this test gateway leaves out.
        if (r.status() >= 400 && !r.url().endsWith('/openapi.json')) {
          failed.push(`${path}: ${r.status()} ${r.url()}`);
        }
      });
      await page.goto(`${gw.base}${path}`, { waitUntil: 'networkidle' });
      const icon = await page.$eval('link[rel=icon]', (l) => (l as HTMLLinkElement).href);
      expect(icon).toBe(`${gw.base}/favicon.svg`);
      await page.close();
    }
    expect(failed).toEqual([]);
  }, 60_000);

  it('offers the orchestrators’ models, locks the name, shows the running effect, and ends the stream when the tab closes', async () => {
    const page = await openPage('/publish.html?stream=pg-effects');
    // The model pickers list what the orchestrator offers, not a list written into the page.
    const options = await until('the models', async () => {
      const values = await page.$$eval('#model option', (os) =>
        os.map((o) => (o as HTMLOptionElement).value),
      );
      return values.length > 1 ? values : null;
    });
    expect(options).toEqual(['', ...[...MODELS].sort()]);
    const effects = await page.$$eval('#effect option', (os) =>
      os.map((o) => (o as HTMLOptionElement).value),
    );
    expect(effects).toEqual([...MODELS].sort());
    // Chromium sends H.264: nothing to explain.
    expect(await page.isHidden('#codec-note')).toBe(true);

    await page.selectOption('#model', 'passthrough');
    await page.click('#start');
    await untilText(page, '#state', 'Publishing “pg-effects”.');
    expect(await page.$eval('#stream', (i) => (i as HTMLInputElement).readOnly)).toBe(true);
    expect(await page.isDisabled('#model')).toBe(true);
    expect(await page.isDisabled('#start')).toBe(true);
    await untilText(page, '#running', 'Running: passthrough');
    expect(await page.inputValue('#effect')).toBe('passthrough');

    // Change the effect and the prompt: the page and the status page show what now runs.
    await page.selectOption('#effect', 'edges');
    await page.fill('#prompt', 'a red fox');
    await page.click('#apply');
    await untilText(page, '#state', 'Applied edges.');
    await untilText(page, '#running', 'Running: edges · prompt: a red fox');
    const statusPage = await browser.newPage();
    await statusPage.goto(`${gw.base}/status.html`);
    const row = statusPage.locator('#streams tr', { hasText: 'pg-effects' });
    await until('the status page row', async () => (await row.count()) === 1);
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe('pg-effects');
    expect(cells[2]).toBe('passthrough'); // the model the stream started with
    expect(cells[3]).toBe('edges · prompt: a red fox'); // the effect it runs now
    await statusPage.close();

    // Closing the tab ends the stream and the preview at once: the gateway gets both DELETEs.
    const session = (await status('pg-effects')) as { state: string };
    expect(session.state).not.toBe('ended');
    await page.close();
    const ended = await until('the stream to end', async () => {
      const s = await status('pg-effects');
      return s?.state === 'ended' ? s : null;
    });
    expect(ended.endReason).toBe('publisher sent DELETE');
    expect(unpublished.filter((u) => u.startsWith('pg-effects/'))).toHaveLength(1);
    await until('the preview’s DELETE', async () => unviewed.some((u) => u.startsWith('pg-effects/')));
  }, 90_000);

  it('publishes video only when there is no microphone, and Stop lets go of the camera', async () => {
    const page = await openPage('/publish.html?stream=pg-nomic&model=passthrough', 'microphone');
    await page.click('#start');
    await untilText(page, '#state', 'Publishing “pg-nomic”.');
    expect(await text(page, '#media-note')).toBe('No microphone found: publishing video only.');
    const live = await page.evaluate(mediaReport);
    expect(live.asked).toEqual(['camera+microphone', 'camera']);
    expect(live.tracks).toEqual([{ kind: 'video', state: 'live' }]);
    await until('video at the gateway', async () => (await status('pg-nomic'))?.input.fps > 5);

    await page.click('#stop');
    await untilText(page, '#state', 'Stopped.');
    const after = await page.evaluate(mediaReport);
    expect(after.tracks).toEqual([{ kind: 'video', state: 'ended' }]);
    expect(after.peers.length).toBeGreaterThan(0);
    expect(after.peers.every((p) => p === 'closed')).toBe(true);
    expect(await page.$eval('#stream', (i) => (i as HTMLInputElement).readOnly)).toBe(false);
    expect(await page.isEnabled('#start')).toBe(true);
    expect((await status('pg-nomic'))?.endReason).toBe('publisher sent DELETE');
    await page.close();
  }, 60_000);

  it('says so when there is no camera, and asks the gateway for nothing', async () => {
    const page = await openPage('/publish.html?stream=pg-nocam&model=passthrough', 'camera');
    await page.click('#start');
    await untilText(page, '#state', 'No camera found. Connect a camera, then press Start again.');
    const report = await page.evaluate(mediaReport);
    expect(report.asked).toEqual(['camera+microphone', 'camera']);
    expect(report.tracks).toEqual([]);
    expect(report.peers).toEqual([]);
    expect(await page.isEnabled('#start')).toBe(true);
    expect(await page.$eval('#stream', (i) => (i as HTMLInputElement).readOnly)).toBe(false);
    expect(await status('pg-nocam')).toBeNull();
    await page.close();
  }, 30_000);

  it('a refused start says why in plain words, releases the camera and closes the peer', async () => {
    // A model no orchestrator offers: the gateway answers 503 after the camera is open.
    const page = await openPage('/publish.html?stream=pg-refused&model=no-such-model');
    await page.click('#start');
    await untilText(page, '#state', 'No orchestrator can take the stream now.');
    const said = await text(page, '#state');
    expect(said).toContain('The gateway said: “');
    expect(said).not.toContain('{');
    const report = await page.evaluate(mediaReport);
    expect(report.tracks.map((t) => t.kind).sort()).toEqual(['audio', 'video']);
    expect(report.tracks.every((t) => t.state === 'ended')).toBe(true);
    expect(report.peers).toEqual(['closed']);
    expect(await page.$eval('#input', (v) => (v as HTMLVideoElement).srcObject)).toBeNull();
    expect(await page.$eval('#stream', (i) => (i as HTMLInputElement).readOnly)).toBe(false);
    expect(await page.isEnabled('#start')).toBe(true);

    // The name is taken by a running stream: the page says so, and lets go again.
    const other = await startH264Publisher(`${gw.url('pg-taken', 'whip')}?model=passthrough`);
    try {
      await page.fill('#stream', 'pg-taken');
      await page.selectOption('#model', 'passthrough');
      await page.click('#start');
      await untilText(page, '#state', 'The stream name “pg-taken” is already publishing. Pick another name.');
      const again = await page.evaluate(mediaReport);
      expect(again.tracks.every((t) => t.state === 'ended')).toBe(true);
      expect(again.peers).toEqual(['closed', 'closed']);
    } finally {
      await other.stop();
    }
    await page.close();
  }, 60_000);

  it('the watch page says the stream has not started, plays when it starts, says when it ends, and plays again', async () => {
    const page = await openPage('/watch.html?stream=pg-watch');
    await untilText(page, '#state', '“pg-watch” has not started yet.');

    const first = await startH264Publisher(`${gw.url('pg-watch', 'whip')}?model=passthrough`);
    await untilText(page, '#state', 'Playing.', 30_000);
    const time = () => page.$eval('#video', (v) => (v as HTMLVideoElement).currentTime);
    const t0 = await time();
    await until('the video to advance', async () => (await time()) > t0 + 0.5);

    await first.stop();
    await untilText(page, '#state', '“pg-watch” has ended');
    const second = await startH264Publisher(`${gw.url('pg-watch', 'whip')}?model=passthrough`);
    try {
      await untilText(page, '#state', 'Playing.', 30_000);
      expect((await status('pg-watch')).viewers).toBe(1);
      // Closing the tab leaves at once: the gateway gets the viewer's DELETE.
      const before = unviewed.filter((u) => u.startsWith('pg-watch/')).length;
      await page.close();
      await until('the viewer’s DELETE', async () => {
        const now = unviewed.filter((u) => u.startsWith('pg-watch/')).length;
        return now > before && (await status('pg-watch')).viewers === 0;
      });
    } finally {
      await second.stop();
    }
  }, 90_000);
});
