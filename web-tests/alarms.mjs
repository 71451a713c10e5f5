// Alarms in the browser (H.626.4 8.8, 6.1.9): while the owner is on the Devices page an alarm
// shows as a toast (the client follows one alarm stream on every page); the toast opens that
// alarm on the Alarms page; there the alarms already stored are listed, a new one arrives
// without reloading (the same stream), its snapshot opens, and it is reset; the test outside
// checks the reset reached the camera. Logging out closes the stream.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
// Output: one JSON line (`reset`: the platform id of the alarm reset, `toast`: the id of the
// alarm toasted); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));

    // A toast on a page other than Alarms.
    const toast = page.locator('#alarm-toasts .alarm-toast[data-kind=motion]').first();
    await toast.waitFor({ timeout: 20000 });
    expect(await page.getByRole('heading', { level: 1, name: 'Devices' }).count() === 1, 'still on the Devices page');
    const toastText = (await toast.innerText()).trim();
    expect(/^Motion · /.test(toastText), `the toast says what and where (${toastText})`);
    const toastId = await toast.getAttribute('data-alarm-id');
    result.toast = Number(toastId);
    step(result, 'toast', toastText.split('\n')[0]);
    await toast.getByRole('link').click();
    await page.waitForURL((u) => u.hash === `#/alarms/${toastId}`);
    await page.locator(`#alarm-${toastId}.highlight`).waitFor({ timeout: 10000 });
    step(result, 'toast opens the alarm');

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

    // One stream for the whole client, through three pages.
    const streams = await page.evaluate(() => window.peercam.alarmStream?.connections);
    expect(streams === 1, `one alarm stream connection (${streams})`);
    expect(!problems.length, problems.join('; '));
    step(result, 'one stream');

    // Logging out closes it and removes the toasts.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await page.waitForFunction(() => window.peercam.alarmStream?.running === false && !window.peercam.alarmStream.connected);
    expect(await page.locator('#alarm-toasts .alarm-toast').count() === 0, 'no toasts after logout');
    step(result, 'closed at logout');
  } finally {
    await browser.close();
  }
});
