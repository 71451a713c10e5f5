// Live view that comes back by itself (issue 20 "instant recovery", H.626.4 8.4 in the web
// client): Play, then the test kills the camera process (SIGKILL) and starts it again, or
// breaks the path the picture takes (the NAT lab blocks the direct one); the page shows that
// it is reconnecting or waiting for the camera and brings the picture back without a click.
//
// Inputs (environment):
//   PEERCAM_WEB_URL       the CMU
//   PEERCAM_WEB_USER      login and PEERCAM_WEB_PASSWORD
//   PEERCAM_DEVICE        the device id
//   PEERCAM_SIGNAL_DIR    this scenario writes `playing` there once the picture runs
//   PEERCAM_WEB_SHOTS     screenshots (optional)
// Output: one JSON line: `states` seen, `recovered_at` and `first_frame_at` (Unix ms) of
// the picture back, `path_before` and `path_after` (the path badge: `direct` or `relay`);
// exit status 1 on failure.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect, frameSignature, launch, login, need, newUser, open, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const signal = need('PEERCAM_SIGNAL_DIR');
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await open(page, `${base}/#/device/${encodeURIComponent(device)}/live`);
    await page.getByRole('button', { name: 'Play', exact: true }).click();
    await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 20000 });
    const a = await frameSignature(page);
    await page.waitForTimeout(700);
    const b = await frameSignature(page);
    expect(a && b && b.t > a.t, 'the picture runs before the camera is killed');
    step(result, 'playing');
    const badge = () => page.evaluate(() => document.getElementById('path-badge')?.dataset.path ?? null);
    result.path_before = await badge();
    const playingPerf = await page.evaluate(() => performance.now());
    writeFileSync(join(signal, 'playing'), String(Date.now()));

    // Every state the page shows, in order, until the picture is back.
    result.states = [];
    result.texts = [];
    const seen = async () => {
      const [s, text] = await page.evaluate(() => [window.peercam.live?.state ?? null, document.querySelector('p.status')?.textContent]);
      if (s && result.states[result.states.length - 1] !== s) result.states.push(s);
      if (text && result.texts[result.texts.length - 1] !== text) result.texts.push(text);
      return s;
    };
    const until = async (want, ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (want.includes(await seen())) return;
        await page.waitForTimeout(50);
      }
      throw new Error(`no state among ${want} within ${ms} ms (seen ${result.states})`);
    };
    await until(['reconnecting', 'waiting'], 15000);
    step(result, 'noticed');
    if (process.env.PEERCAM_WEB_SHOTS) await shots(page, process.env.PEERCAM_WEB_SHOTS, 'live-reconnecting');
    await until(['playing'], 60000);
    const live = await page.evaluate(() => window.peercam.live);
    result.recovered_at = live.recoveredAt;
    result.reconnects = live.reconnects;
    // The session that brought it back started after the picture ran (clickedAt is its start).
    await page.waitForFunction((t) => window.peercam.lastPlay?.clickedAt > t && window.peercam.lastPlay.firstFrameAt != null, playingPerf, { timeout: 10000 });
    result.first_frame_at = await page.evaluate(() => Math.round(Date.now() - (performance.now() - window.peercam.lastPlay.firstFrameAt)));
    const c = await frameSignature(page);
    await page.waitForTimeout(700);
    const d = await frameSignature(page);
    expect(c && d && d.t > c.t, 'the picture runs again');
    expect(d.sd > 5, 'the picture is not blank');
    step(result, 'recovered');
    result.path_after = await badge();
    expect(await page.getByRole('button', { name: 'Stop', exact: true }).count() === 1, 'the view still offers Stop (no click was needed)');
    result.problems = problems;
    expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
