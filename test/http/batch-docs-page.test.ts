// The REST docs page in Chromium: it lists every route of the OpenAPI document, with fields.
import { existsSync } from 'node:fs';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { expect, it } from 'vitest';
import { startAiGateway } from '../helpers/ai-orchestrator.ts';

const CHROMIUM = '/usr/bin/chromium';

it.skipIf(!existsSync(CHROMIUM))(
  'api.html lists every REST route and the fields of each batch AI route',
  async () => {
    const gw = await startAiGateway({ orchestrators: [], logger: pino({ level: 'silent' }) });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${gw.base}/api.html`);
      await page.waitForSelector('.route');
      const doc = await (await fetch(`${gw.base}/openapi.json`)).json();
      const operations = Object.values(doc.paths as Record<string, object>).reduce(
        (n: number, item) => n + Object.keys(item).length,
        0,
      );
      expect(await page.locator('.route').count()).toBe(operations);
      expect(await page.locator('h2').allTextContents()).toEqual([
        'batch AI',
        'live video-to-video',
        'transcoding',
        'gateway',
      ]);
      const t2i = page.locator('.route', { hasText: 'POST /text-to-image' });
      await expect(t2i.locator('td', { hasText: /^prompt$/ }).count()).resolves.toBe(1);
      expect(await page.locator('.path', { hasText: '/live/{manifestId}/{seq}.ts' }).count()).toBe(2);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await gw.close();
    }
  },
  30_000,
);
