// Sharing in the browser (H.626.4 8.6, docs/security.md D5): a sub-account plays the camera shared
// with it; the owner unshares (through the API, as from another device); the sub-account's
// live view stops within a second or two, and playing again is refused.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the sub-account
//   PEERCAM_OWNER / _OWNER_PASSWORD the owner (unshares)
//   PEERCAM_DEVICE                  the shared camera
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, run, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const sub = need('PEERCAM_WEB_USER');
  const browser = await launch();
  try {
    // The owner's API session, in a context of its own.
    const owner = await newUser(browser);
    await owner.page.goto(`${base}/`);
    const ownerToken = await owner.page.evaluate(async ({ base, login, password }) => {
      const r = await fetch(`${base}/api/v1/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login, password }),
      });
      return (await r.json()).token;
    }, { base, login: need('PEERCAM_OWNER'), password: need('PEERCAM_OWNER_PASSWORD') });
    expect(ownerToken, 'the owner logged in');
    step(result, 'owner');

    const { page } = await newUser(browser);
    await login(page, base, sub, need('PEERCAM_WEB_PASSWORD'));
    await page.goto(`${base}/#/device/${encodeURIComponent(device)}/live`);
    await page.getByRole('button', { name: 'Play', exact: true }).click();
    await page.locator('#path-badge[data-path]').waitFor({ timeout: 20000 });
    await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
    const painted = () => page.evaluate(() => document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames);
    const f0 = await painted();
    await page.waitForTimeout(800);
    const f1 = await painted();
    expect(f1 > f0 + 5, `the sub-account's view plays (${f0} -> ${f1} frames)`);
    step(result, 'playing');

    // The owner unshares; the view must stop: no new frame for 600 ms, within 5 s.
    const unsharedAt = Date.now();
    const status = await owner.page.evaluate(async ({ base, token, device, sub }) => {
      const r = await fetch(`${base}/api/v1/devices/${encodeURIComponent(device)}/shares/${encodeURIComponent(sub)}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${token}` },
      });
      return r.status;
    }, { base, token: ownerToken, device, sub });
    expect(status === 204 || status === 200, `unshare answered ${status}`);
    // Frames painted, not currentTime: a live stream's clock runs on without frames.
    result.stopped_ms = await page.evaluate(async (since) => {
      const v = document.querySelector('video');
      const frames = () => v.getVideoPlaybackQuality().totalVideoFrames;
      let last = frames();
      let stillSince = performance.now();
      const start = performance.now();
      while (performance.now() - start < 5000) {
        await new Promise((r) => setTimeout(r, 50));
        if (frames() !== last) { last = frames(); stillSince = performance.now(); }
        if (performance.now() - stillSince >= 600) return Math.round(stillSince - start + since);
      }
      return null;
    }, Date.now() - unsharedAt);
    expect(result.stopped_ms != null, 'the view stopped within 5 s of the unshare');
    step(result, 'stopped');

    // Playing again is refused with a message.
    await page.reload();
    await page.waitForTimeout(500);
    const play = page.getByRole('button', { name: 'Play', exact: true });
    if (await play.count()) {
      await play.click();
      await page.locator('[role=alert], .error').first().waitFor({ timeout: 10000 });
      result.again = (await page.locator('[role=alert], .error').first().textContent())?.trim();
    } else {
      result.again = (await page.locator('main').textContent())?.trim().slice(0, 200);
    }
    step(result, 'refused');
  } finally {
    await browser.close();
  }
});
