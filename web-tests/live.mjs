// Live view in the browser over WebRTC (H.626.4 8.4, issue 7): the full checks of
// lib.mjs checkPlaying once, then `PEERCAM_WEB_PLAYS` plays timed from the click on Play to
// the first painted frame (requestVideoFrameCallback), p50/p95.
//
// Inputs (environment):
//   PEERCAM_WEB_URL       the CMU
//   PEERCAM_WEB_USER      login (phone or user name) and PEERCAM_WEB_PASSWORD
//   PEERCAM_DEVICE        the device id
//   PEERCAM_WEB_RELAY     1: force TURN (opens the page with ?relay=1)
//   PEERCAM_WEB_PLAYS     timed plays after the checks (default 10)
//   PEERCAM_WEB_SHOTS     screenshots (optional)
// Output: one JSON line; exit status 1 on failure.

import { checkPlaying, expect, launch, login, need, newUser, open, percentile, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const relay = process.env.PEERCAM_WEB_RELAY === '1';
  const plays = Number(process.env.PEERCAM_WEB_PLAYS ?? '10');
  const shotDir = process.env.PEERCAM_WEB_SHOTS;
  result.relay_forced = relay;
  const browser = await launch();
  result.browser = browser.version();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    const livePage = `${base}/${relay ? '?relay=1' : ''}#/device/${encodeURIComponent(device)}/live`;
    await open(page, livePage);
    await page.getByRole('button', { name: 'Play', exact: true }).waitFor();
    const shot = async (p, name) => { result.screenshots = await shots(p, shotDir, `${name}${relay ? '-relay' : ''}`); };
    result.check = await checkPlaying(page, { shot });
    expect(result.check.path === (relay ? 'relay' : 'direct') || !relay, `relay forced, path ${result.check.path}`);
    step(result, 'checked');
    const firstFrame = [];
    const connect = [];
    for (let i = 0; i < plays; i++) {
      await page.getByRole('button', { name: 'Play', exact: true }).click();
      await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
      const lp = await page.evaluate(() => window.peercam.lastPlay);
      firstFrame.push(lp.firstFrameAt - lp.clickedAt);
      connect.push(lp.connectedAt - lp.clickedAt);
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await page.getByText('Stopped.', { exact: false }).waitFor();
    }
    if (plays > 0) {
      result.plays = plays;
      result.first_frame_ms = { p50: Math.round(percentile(firstFrame, 50)), p95: Math.round(percentile(firstFrame, 95)), max: Math.round(Math.max(...firstFrame)) };
      result.connect_ms = { p50: Math.round(percentile(connect, 50)), p95: Math.round(percentile(connect, 95)) };
    }
    result.problems = problems;
    expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
