// A shared clip link made in the web client (issue 17 item 9, H.626.4 8.7.1 download): the
// owner opens the camera's playback page, chooses a range of its cloud recording and presses
// "Share clip"; the client exports the range over WebRTC, asks the CMU for the link and
// uploads the MP4 to the cloud storage unit (a cross-origin PUT: the CS's CORS and the page's
// `connect-src`); the link appears with a Copy button and in the "Shared clips" card. A
// browser with no account then opens the link and plays the clip (it has a picture and its
// time advances). Before that, an upload the network drops leaves its link revoked.
//
// Inputs (environment):
//   PEERCAM_WEB_URL          the CMU
//   PEERCAM_WEB_USER         the owner's login, and PEERCAM_WEB_PASSWORD
//   PEERCAM_DEVICE           the camera (recording to the cloud)
//   PEERCAM_SPAN_START_MS    start of a recorded span (Unix ms) with at least 6 s after it
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, open, run, step } from './lib.mjs';

const hhmmss = (ms) => new Date(ms).toISOString().slice(11, 19); // the context runs in UTC

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const spanStart = Number(need('PEERCAM_SPAN_START_MS'));
  const browser = await launch();
  result.browser = browser.version();
  try {
    const owner = await newUser(browser);
    const p = owner.page;
    await login(p, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await p.goto(`${base}/#/device/${encodeURIComponent(device)}/recordings`);
    await p.getByText(/recorded stretch/).waitFor({ timeout: 20000 });
    await p.locator('#shared-clips').getByText(/No clip of this camera is shared/).waitFor({ timeout: 10000 });
    step(result, 'playback page');

    // Longer than 15 minutes: refused before any export.
    await p.getByLabel('From', { exact: true }).fill('00:00:00');
    await p.getByLabel('To', { exact: true }).fill('00:20:00');
    await p.locator('#pb-share').click();
    result.too_long = await p.locator('#pb-share-status').textContent();
    expect(/at most 15 minutes/.test(result.too_long), `a range over 15 minutes is refused first: ${result.too_long}`);
    step(result, 'longer than 15 minutes refused');

    // 5 s of the cloud recording. First the upload fails (the network drops it): the link
    // made for it is revoked and the page says so.
    const from = Math.ceil((spanStart + 500) / 1000) * 1000;
    await p.getByLabel('From', { exact: true }).fill(hhmmss(from));
    await p.getByLabel('To', { exact: true }).fill(hhmmss(from + 5000));
    await p.route('**/cp/v1/clip/**', (route) => route.abort('connectionreset'));
    await p.locator('#pb-share').click();
    await p.waitForFunction(() => ['done', 'failed'].includes(window.peercam.playback?.share?.state), null, { timeout: 60000 });
    result.failed = await p.evaluate(() => window.peercam.playback.share);
    expect(result.failed.state === 'failed' && /No link was kept/.test(result.failed.error), `a failed upload keeps no link: ${JSON.stringify(result.failed)}`);
    expect(await p.locator('#pb-share-link').isHidden(), 'no link shown after a failed upload');
    await p.locator('#shared-clips li.clip-revoked').waitFor({ timeout: 10000 });
    await p.unroute('**/cp/v1/clip/**');
    step(result, 'failed upload revoked its link');

    // Then 7 days (the default), shared.
    result.expiry = await p.locator('#pb-share-expiry').inputValue();
    expect(result.expiry === String(7 * 86400), `7 days is the default expiry, got ${result.expiry}`);
    await p.locator('#pb-share').click();
    await p.waitForFunction(() => ['done', 'failed'].includes(window.peercam.playback?.share?.state), null, { timeout: 60000 });
    result.share = await p.evaluate(() => window.peercam.playback.share);
    result.note = await p.locator('#pb-share-status').textContent();
    expect(result.share.state === 'done', `the link is made: ${JSON.stringify(result.share)} (${result.note})`);
    const link = await p.locator('#pb-share-link').inputValue();
    result.link = link.replace(/\/c\/.*/, '/c/…');
    expect(link === result.share.link && /\/c\/[A-Za-z0-9_-]+$/.test(link), `the link is shown: ${link}`);
    expect(await p.locator('#pb-share-copy').isVisible(), 'a Copy button');
    const id = link.split('/c/')[1];
    await p.locator(`#shared-clips button[data-clip="${id}"]`).waitFor({ timeout: 10000 });
    expect(owner.problems.length === 0, `no page errors for the owner: ${owner.problems.join('; ')}`);
    expect(await p.locator('#shared-clips li.clip-active').count() === 1, 'one active link listed');
    step(result, 'shared in the web client', { bytes: result.share.bytes });

    // A fresh profile: no session, no cookies, no account.
    const anon = await newUser(browser);
    const resp = await open(anon.page, link);
    result.status = resp.status();
    expect(result.status === 200, `the page answers 200, got ${result.status}`);
    await anon.page.waitForFunction(() => {
      const v = document.querySelector('#clip');
      if (v && v.paused && v.readyState >= 2) v.play().catch(() => {});
      return v && v.videoWidth > 0 && v.currentTime > 1.0;
    }, null, { timeout: 20000 }).catch(async (e) => {
      result.video = await anon.page.locator('#clip').evaluate((v) => ({
        error: v.error && v.error.code, readyState: v.readyState, currentTime: v.currentTime,
      }));
      result.problems = anon.problems;
      throw e;
    });
    result.video = await anon.page.locator('#clip').evaluate((v) => ({
      width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime, duration: v.duration,
    }));
    step(result, 'played without an account', result.video);
    expect(anon.problems.length === 0, `no page errors: ${anon.problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
