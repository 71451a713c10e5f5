// Alarms in the browser (H.626.4 8.8, 6.1.9): the owner opens the Alarms page, sees the
// alarms already stored, sees a new one arrive without reloading (the live stream), opens
// its snapshot, and resets it; the test outside checks the reset reached the camera.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
// Output: one JSON line (`reset`: the platform id of the alarm reset); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
    await page.locator('li.alarm[data-kind=motion]').first().waitFor({ timeout: 20000 });
    const before = await page.locator('li.alarm[data-kind=motion]').evaluateAll((els) => els.map((e) => e.id));
    result.initial = before.length;
    step(result, 'listed');

    // A new alarm arrives while the page is open.
    const newId = await page.waitForFunction(
      (ids) => [...document.querySelectorAll('li.alarm[data-kind=motion]')].find((e) => !ids.includes(e.id))?.id,
      before,
      { timeout: 20000 },
    );
    const id = (await newId.jsonValue()).replace('alarm-', '');
    const fresh = page.locator(`#alarm-${id}`);
    step(result, 'live');

    await fresh.getByRole('button', { name: 'Show snapshot' }).click();
    await page.locator(`#alarm-${id} img.alarm-snapshot`).waitFor({ timeout: 10000 });
    step(result, 'snapshot');

    await page.locator(`#alarm-${id}`).getByRole('button', { name: 'Reset' }).click();
    await page.locator(`#alarm-${id}[data-state=reset]`).waitFor({ timeout: 10000 });
    expect(await page.locator(`#alarm-${id}`).getByText('Reset').count() > 0, 'shown as reset');
    result.reset = Number(id);
    step(result, 'reset');
  } finally {
    await browser.close();
  }
});
