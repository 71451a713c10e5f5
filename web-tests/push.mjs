// Web Push on this device (H.626.4 6.1.9) in Chromium, with the platform's CA trusted (a
// service worker needs a trusted origin; a fresh NSS database in a temporary HOME):
//  1. the Alarms page offers "Enable notifications on this device"; with the real
//     PushManager it either subscribes (a browser with a push service) or says why not
//     (headless Chromium here reaches no push service: `real_push` is false);
//  2. with a stand-in PushManager (endpoint and keys from the test), the page asks for the
//     VAPID key, subscribes with it, posts `toJSON()` (the CMU keeps it), and "Disable"
//     deletes it again;
//  3. the service worker shows a pushed alarm (delivered with DevTools'
//     ServiceWorker.deliverPushMessage) as a notification tagged with the alarm id.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU (its certificate must name the host)
//   PEERCAM_CA                      the platform CA (PEM)
//   PEERCAM_WEB_USER / _PASSWORD    the owner
//   PEERCAM_WEB_SHOTS               screenshots (optional)
// Output: one JSON line; exit status 1 on failure.

import { execFileSync } from 'node:child_process';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, DESKTOP, expect, login, need, run, shots, step } from './lib.mjs';

/** The caller's subscriptions, asked with the page's session. */
async function subscriptions(page) {
  return page.evaluate(async () => {
    const s = JSON.parse(localStorage.getItem('peercam.session'));
    const r = await fetch('/api/v1/me/push-subscriptions', { headers: { Authorization: `Bearer ${s.token}` } });
    return (await r.json()).subscriptions.map((x) => x.endpoint);
  });
}

/** Waits until the page's push status says something matching `re`; returns it. */
async function status(page, re) {
  const handle = await page.waitForFunction(
    (src) => {
      const t = document.querySelector('#push-status')?.textContent ?? '';
      return new RegExp(src).test(t) && t;
    },
    re.source,
    { timeout: 30000 },
  );
  return handle.jsonValue();
}

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const home = mkdtempSync(join(tmpdir(), 'peercam-push-'));
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'peercam test CA', '-i', need('PEERCAM_CA')]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home },
  });
  try {
    const context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', timezoneId: 'UTC' });
    await context.grantPermissions(['notifications'], { origin: base });
    const page = await context.newPage();
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    result.scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
    const enable = page.getByRole('button', { name: 'Enable notifications on this device' });
    await enable.waitFor();
    step(result, 'button shown');

    // 1. The browser's own push service, if it has one.
    await enable.click();
    result.real_status = await status(page, /./);
    result.real_push = result.real_status.startsWith('Alarms are shown');
    if (result.real_push) {
      result.real_subscriptions = await subscriptions(page);
      await page.getByRole('button', { name: 'Disable notifications on this device' }).click();
      await status(page, /no longer/);
    }
    step(result, 'real push manager');

    // 2. The page's flow with a stand-in PushManager.
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const stand = {
      endpoint: `https://push.invalid/peercam-web-test/${randomBytes(6).toString('hex')}`,
      p256dh: ecdh.getPublicKey().toString('base64url'),
      auth: randomBytes(16).toString('base64url'),
    };
    result.endpoint = stand.endpoint;
    await page.addInitScript(({ endpoint, p256dh, auth }) => {
      let current = null;
      window.pushKeysSeen = [];
      PushManager.prototype.getSubscription = async () => current;
      PushManager.prototype.subscribe = async (opts) => {
        const key = new Uint8Array(opts.applicationServerKey);
        window.pushKeysSeen.push({ key: btoa(String.fromCharCode(...key)), userVisibleOnly: opts.userVisibleOnly });
        current = {
          endpoint,
          toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
          unsubscribe: async () => {
            current = null;
            return true;
          },
        };
        return current;
      };
    }, stand);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
    await enable.click();
    result.enabled_status = await status(page, /shown on this device|Could not/);
    expect(result.enabled_status.startsWith('Alarms are shown'), result.enabled_status);
    [result.subscribed_with] = await page.evaluate(() => window.pushKeysSeen);
    result.after_enable = await subscriptions(page);
    result.screenshots = await shots(page, process.env.PEERCAM_WEB_SHOTS, '11-alarms-push');
    await page.getByRole('button', { name: 'Disable notifications on this device' }).click();
    await status(page, /no longer/);
    result.after_disable = await subscriptions(page);
    await enable.waitFor();
    step(result, 'enable and disable');

    // 3. The service worker shows a pushed alarm.
    const cdp = await context.newCDPSession(page);
    const registration = new Promise((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const r = registrations.find((x) => x.scopeURL === `${base}/` && !x.isDeleted);
        if (r) resolve(r.registrationId);
      });
    });
    await cdp.send('ServiceWorker.enable');
    const registrationId = await registration;
    const alarm = { id: 4242, kind: 'motion', camera: 'pc-x', camera_name: 'Garden', at_ms: 1, title: 'Garden: motion', body: 'Motion at Garden', url: '/#/alarms/4242' };
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId, data: JSON.stringify(alarm) });
    for (let i = 0; i < 60 && !result.notifications?.length; i++) {
      await page.waitForTimeout(250);
      result.notifications = await page.evaluate(async () => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data?.url }));
      });
    }
    expect(result.notifications?.length, 'the service worker showed the pushed alarm');
    step(result, 'notification shown');
  } finally {
    await browser.close();
    rmSync(home, { recursive: true, force: true });
  }
});
