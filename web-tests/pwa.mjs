// The installable client (M_CU, H.626.4 6.3.1) and its version check (8.11.2) in Chromium
// with the platform's CA trusted (a fresh NSS database in a temporary HOME; no certificate
// errors are ignored, as a service worker needs a trusted origin): the web app manifest is
// served and complete, the service worker registers and controls the page, the app shell
// opens offline, and a newer release is offered and applied by reloading.
//
// Inputs (environment):
//   PEERCAM_WEB_URL   the CMU (its certificate must name the host)
//   PEERCAM_CA        the platform CA (PEM)
// Output: one JSON line; exit status 1 on failure.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, DESKTOP, expect, need, run, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const home = mkdtempSync(join(tmpdir(), 'peercam-pwa-'));
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'peercam test CA', '-i', need('PEERCAM_CA')]);
  step(result, 'ca trusted');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home },
  });
  try {
    const context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    // The manifest an installable app needs.
    const manifest = await page.evaluate(async () => {
      const link = document.querySelector('link[rel=manifest]');
      const r = await fetch(link.href);
      return { type: r.headers.get('content-type'), body: await r.json() };
    });
    expect(/manifest\+json|json/.test(manifest.type), `manifest content type ${manifest.type}`);
    const m = manifest.body;
    expect(m.name && m.start_url && m.display === 'standalone' && m.icons?.length > 0, `manifest ${JSON.stringify(m)}`);
    result.manifest = { name: m.name, display: m.display, icons: m.icons.length };
    step(result, 'manifest');
    // The service worker registers and takes control.
    result.scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    expect(result.scope === `${base}/`, `scope ${result.scope}`);
    await page.reload();
    result.controlled = await page.evaluate(() => !!navigator.serviceWorker.controller);
    expect(result.controlled, 'the service worker controls the page after a reload');
    step(result, 'service worker');
    // Offline: the app shell still opens (the API does not).
    await context.setOffline(true);
    await page.reload();
    await page.getByRole('heading', { level: 1 }).first().waitFor({ timeout: 10000 });
    result.offline_heading = (await page.getByRole('heading', { level: 1 }).first().textContent())?.trim();
    await context.setOffline(false);
    step(result, 'offline shell');
    // 8.11.2: the CMU says a newer client exists; the banner offers it; reloading applies it
    // and the client reports the update after the reload.
    let reported = null;
    await page.route('**/api/v1/client/update?**', (route) => route.fulfill({
      contentType: 'application/json',
      body: JSON.stringify({ update_available: true, url: `${base}/` }),
    }));
    await page.route('**/api/v1/client/update/report', async (route) => {
      reported = route.request().postDataJSON();
      await route.continue();
    });
    await page.reload();
    const reload = page.getByRole('button', { name: /reload/i });
    await reload.waitFor({ timeout: 10000 });
    result.banner = (await page.locator('#update').textContent())?.trim();
    await Promise.all([page.waitForEvent('load'), reload.click()]);
    step(result, 'update offered and applied');
    result.report_sent = reported;
  } finally {
    await browser.close();
    rmSync(home, { recursive: true, force: true });
  }
});
