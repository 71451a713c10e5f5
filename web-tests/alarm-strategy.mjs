// A camera's alarm strategy in the browser (H.626.4 8.8 steps 1-4): the owner opens the
// camera's Alarms tab, arms it, picks sources and actions, draws a motion zone by dragging on
// the camera's picture, adds a time window, and saves; a zone reaching past the picture's
// edge is refused with the server's message at that field first. The test outside checks the
// saved strategy and that the camera received it.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
//   PEERCAM_WEB_DEVICE              the camera's device id
//   PEERCAM_WEB_OFFLINE=1           the camera is offline: the page says the strategy waits
//                                   for it (202) instead of "sent to the camera"
// Output: one JSON line (`zone`: the zone saved, thousandths); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_WEB_DEVICE');
  const offline = process.env.PEERCAM_WEB_OFFLINE === '1';
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    // Reached from the device card.
    await page.locator(`li.device[data-device-id="${device}"]`).getByRole('link', { name: 'Alarms' }).click();
    await page.waitForURL((u) => u.hash === `#/device/${device}/alarms`);
    await page.getByRole('heading', { level: 1, name: /alarms$/ }).waitFor();
    await page.locator('#zone-note').filter({ hasNotText: 'Loading' }).waitFor({ timeout: 10000 });
    step(result, 'opened');

    await page.getByLabel('Armed: the camera raises alarms').check();
    await page.getByLabel('Motion in the picture').check();
    await page.getByLabel('Picture lost').check();
    await page.getByLabel('Send an SMS').check();
    await page.getByLabel('Keep a snapshot with the alarm').uncheck();
    await page.getByLabel('Quiet time after an alarm, seconds').fill('12');
    await page.getByRole('button', { name: 'Add a time window' }).click();
    await page.getByRole('checkbox', { name: 'Sunday' }).uncheck();
    step(result, 'settings');

    // Drag from 10 %, 20 % to 50 %, 60 % of the picture.
    const canvas = page.locator('#zone-canvas');
    await canvas.scrollIntoViewIfNeeded();
    const box = await canvas.boundingBox();
    await page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.4, { steps: 4 });
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.6, { steps: 4 });
    await page.mouse.up();
    await page.locator('#zone-list li.zone').first().waitFor();
    expect(await page.locator('#zone-list li.zone').count() === 1, 'one zone drawn');
    step(result, 'zone drawn');

    // Too wide: the server's refusal is shown at the zone's width.
    const width = page.locator('#zone-list input[data-field="zones[0].w"]');
    const drawnWidth = await width.inputValue();
    await width.fill('95');
    await page.getByRole('button', { name: 'Save and send to the camera' }).click();
    const err = page.locator(`#${await width.getAttribute('id')}-err`);
    await err.filter({ hasText: /./ }).waitFor({ timeout: 10000 });
    result.refusal = await err.innerText();
    expect(await width.getAttribute('aria-invalid') === 'true', 'the width is marked invalid');
    step(result, 'refused at the field', result.refusal);
    await width.fill(drawnWidth);
    expect((await err.innerText()) === '' && !(await width.getAttribute('aria-invalid')), 'the refusal goes once the width is changed');

    await page.getByRole('button', { name: 'Save and send to the camera' }).click();
    await page.locator('#strategy-status[data-applied]').waitFor({ timeout: 10000 });
    const status = await page.locator('#strategy-status').innerText();
    expect(offline ? /camera is offline/.test(status) : /sent to the camera/.test(status), `saved and sent, or pending (${status})`);
    expect(await page.locator('#strategy-status').getAttribute('data-applied') === String(!offline), 'applied unless offline');
    const saved = await page.evaluate(() => window.peercam.strategy.saved);
    result.zone = saved.strategy.zones[0];
    result.revision = saved.revision;
    step(result, 'saved', status);

    // Reload: the page shows what was saved.
    await page.reload();
    await page.locator('#zone-list li.zone').first().waitFor({ timeout: 10000 });
    expect(await page.getByLabel('Send an SMS').isChecked(), 'SMS still on after reload');
    expect(await page.locator('#zone-list li.zone').count() === 1, 'the zone is still there');
    if (!offline) await shots(page, process.env.PEERCAM_WEB_SHOTS, 'alarm-strategy', { scrollTo: '#zone-canvas' });
    expect(!problems.length, problems.join('; '));
    step(result, 'reloaded');
  } finally {
    await browser.close();
  }
});
