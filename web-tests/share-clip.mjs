// A shared clip link in the browser (issue 17 item 9, H.626.4 8.7.1 download): a browser
// with no account opens the link; the page plays the clip (the video's time advances and it
// has a picture) and offers the download. After the owner revoked the link (or it expired),
// the same link shows that state and plays nothing.
//
// Inputs (environment):
//   PEERCAM_CLIP_LINK     the link (https://CMU/c/<id>)
//   PEERCAM_CLIP_EXPECT   `active` (plays) or `revoked` / `expired` (refused)
//   PEERCAM_WEB_URL, PEERCAM_WEB_USER / _PASSWORD, PEERCAM_DEVICE (optional, with `active`):
//                         then the owner revokes the link on the camera's recordings page
//                         (the "Shared clips" card) and the same link must show `revoked`
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, open, run, step } from './lib.mjs';

await run(async (result) => {
  const link = need('PEERCAM_CLIP_LINK');
  const want = need('PEERCAM_CLIP_EXPECT');
  const browser = await launch();
  result.browser = browser.version();
  try {
    // A fresh profile: no session, no cookies, no account.
    const { page, problems } = await newUser(browser);
    const resp = await open(page, link);
    result.status = resp.status();
    result.state = await page.locator('body').getAttribute('data-state');
    result.title = (await page.locator('h1').textContent()).trim();
    expect(result.state === want, `the page's state is ${want}, got ${result.state}`);
    step(result, 'opened');
    if (want !== 'active') {
      expect(result.status === 410, `a ${want} link answers 410, got ${result.status}`);
      expect(await page.locator('video').count() === 0, 'no player');
      expect(await page.locator('#download').count() === 0, 'no download');
      return;
    }
    expect(result.status === 200, `the page answers 200, got ${result.status}`);
    await page.waitForFunction(() => {
      const v = document.querySelector('#clip');
      if (v && v.paused && v.readyState >= 2) v.play().catch(() => {});
      return v && v.videoWidth > 0 && v.currentTime > 1.0;
    }, null, { timeout: 20000 }).catch(async (e) => {
      result.video = await page.locator('#clip').evaluate((v) => ({
        error: v.error && v.error.code, readyState: v.readyState, networkState: v.networkState,
        currentTime: v.currentTime, src: v.currentSrc.replace(/grant=[^&]+/, 'grant=…'),
      }));
      result.problems = problems;
      throw e;
    });
    result.video = await page.locator('#clip').evaluate((v) => ({
      width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime, duration: v.duration,
    }));
    step(result, 'played', result.video);
    const href = await page.locator('#download').getAttribute('href');
    expect(href && href.endsWith('/download'), `a download link, got ${href}`);
    // The file itself: the browser saves it as an attachment.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 15000 }),
      page.locator('#download').click(),
    ]);
    result.download = download.suggestedFilename();
    expect(/\.mp4$/.test(result.download), `an MP4 download, got ${result.download}`);
    step(result, 'downloaded');
    expect(problems.length === 0, `no page errors: ${problems.join('; ')}`);
    if (!process.env.PEERCAM_WEB_USER) return;

    // The owner revokes it in the web client, in another profile.
    const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
    const owner = await newUser(browser);
    await login(owner.page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await owner.page.goto(`${base}/#/device/${encodeURIComponent(need('PEERCAM_DEVICE'))}/recordings`);
    const id = link.split('/c/')[1];
    const revoke = owner.page.locator(`#shared-clips button[data-clip="${id}"]`);
    await revoke.waitFor({ timeout: 20000 });
    result.listed = (await owner.page.locator('#shared-clips li').first().innerText()).replace(/\s+/g, ' ');
    await revoke.click();
    await owner.page.locator('#shared-clips li.clip-revoked').waitFor({ timeout: 10000 });
    expect(owner.problems.length === 0, `no page errors for the owner: ${owner.problems.join('; ')}`);
    step(result, 'revoked in the web client');
    const again = await open(page, link);
    result.after = { status: again.status(), state: await page.locator('body').getAttribute('data-state') };
    expect(result.after.status === 410 && result.after.state === 'revoked', `the link is revoked: ${JSON.stringify(result.after)}`);
    expect(await page.locator('video').count() === 0, 'no player after revocation');
    step(result, 'refused after revocation');
  } finally {
    await browser.close();
  }
});
