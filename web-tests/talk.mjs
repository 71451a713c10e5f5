// Talk from the browser (intercom, H.626.4 6.1.8): the owner plays the live view, holds
// "Hold to talk" with the pointer for PEERCAM_TALK_MS, and lets go. Chromium's fake
// microphone plays PEERCAM_FAKE_MIC (a WAV file; the Rust test makes a 1 kHz tone and looks
// for it in the camera's speaker file afterwards). Also checks the Space key and the toggle
// start and stop the talk, and that the status says so. `pressed_unix_ms` in the output: when
// each of the three talks was started (Unix ms), for the mouth-to-speaker delay.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    a user whose scopes on the device hold `talk`
//   PEERCAM_DEVICE                  the camera
//   PEERCAM_FAKE_MIC                the fake microphone's WAV file
//   PEERCAM_TALK_MS                 how long to hold the button (default 2000)
//   PEERCAM_WEB_RELAY               1: force TURN (opens the page with ?relay=1)
//   PEERCAM_TALK_REFUSED            1: the camera declines talk (it has no speaker): the
//                                   page must say so, and the scenario stops there
//   PEERCAM_TALK_BUSY               1: another viewer holds the camera's speaker: holding the
//                                   button must say "Another viewer is talking" (the
//                                   camera's {"talk":"busy"} on the data channel), and the
//                                   scenario stops there
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, run, step } from './lib.mjs';

/** Waits for the talk status to contain `text`; fails with what it says instead. */
async function statusSays(page, text, timeout = 5000) {
  try {
    await page.locator('#talk-status').getByText(text, { exact: false }).waitFor({ timeout });
  } catch {
    const now = await page.locator('#talk-status').textContent();
    throw new Error(`the talk status says "${now}", not "${text}"`);
  }
}

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const holdMs = Number(process.env.PEERCAM_TALK_MS ?? '2000');
  const relay = process.env.PEERCAM_WEB_RELAY === '1';
  result.relay_forced = relay;
  const browser = await launch({ fakeMicrophone: need('PEERCAM_FAKE_MIC') });
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await page.goto(`${base}/${relay ? '?relay=1' : ''}#/device/${encodeURIComponent(device)}/live`);
    const hold = page.getByRole('button', { name: 'Hold to talk (or hold Space)' });
    await hold.waitFor();
    // Before Play, the button explains itself and sends nothing.
    await hold.dispatchEvent('pointerdown');
    await statusSays(page, 'Press Play first');
    await hold.dispatchEvent('pointerup');
    step(result, 'before play');

    await page.getByRole('button', { name: 'Play', exact: true }).click();
    await page.locator('#path-badge[data-path]').waitFor({ timeout: 20000 });
    await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
    result.path = await page.locator('#path-badge').getAttribute('data-path');
    expect(!relay || result.path === 'relay', `relay forced, path ${result.path}`);
    step(result, 'playing');

    if (process.env.PEERCAM_TALK_REFUSED === '1') {
      await hold.scrollIntoViewIfNeeded();
      await hold.dispatchEvent('pointerdown');
      await statusSays(page, 'This camera does not accept talk');
      await hold.dispatchEvent('pointerup');
      step(result, 'refused');
      expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
      return;
    }

    if (process.env.PEERCAM_TALK_BUSY === '1') {
      await hold.scrollIntoViewIfNeeded();
      const b = await hold.boundingBox();
      await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
      await page.mouse.down();
      await statusSays(page, 'Another viewer is talking', 10000);
      expect(await page.evaluate(() => window.peercam.talk?.startedAt != null), 'the microphone was on');
      await page.mouse.up();
      await statusSays(page, 'Not talking');
      step(result, 'busy');
      expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
      return;
    }

    // Hold with the pointer.
    await hold.scrollIntoViewIfNeeded();
    const box = await hold.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    result.pressed_unix_ms = [Date.now()];
    await page.mouse.down();
    await statusSays(page, 'Talking…');
    const t0 = Date.now();
    await page.waitForTimeout(Math.max(0, holdMs - (Date.now() - t0)));
    await page.mouse.up();
    await statusSays(page, 'Not talking');
    const t = await page.evaluate(() => window.peercam.talk);
    result.talk_ms = Math.round(t.stoppedAt - t.startedAt);
    expect(result.talk_ms >= holdMs - 200, `talked ${result.talk_ms} ms`);
    step(result, 'held');
    // Pauses between the talks, so the camera's speaker file shows three spurts.
    await page.waitForTimeout(800);

    // Space held on the page, then the toggle: each starts and stops the talk (400 ms each).
    await page.locator('h1').click();
    result.pressed_unix_ms.push(Date.now());
    await page.keyboard.down('Space');
    await statusSays(page, 'Talking…');
    await page.waitForTimeout(400);
    await page.keyboard.up('Space');
    await statusSays(page, 'Not talking');
    step(result, 'space');
    await page.waitForTimeout(800);
    const toggle = page.locator('#talk-toggle');
    result.pressed_unix_ms.push(Date.now());
    await toggle.click();
    await statusSays(page, 'Talking…');
    expect(await toggle.getAttribute('aria-pressed') === 'true', 'the toggle shows it is on');
    await page.waitForTimeout(400);
    await toggle.click();
    await statusSays(page, 'Not talking');
    expect(await toggle.getAttribute('aria-pressed') === 'false', 'the toggle shows it is off');
    step(result, 'toggle');
    problems.length === 0 || step(result, 'problems', problems);
    expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
