// Network management in the operator's page (H.626.4 6.1.14): the operator logs in, sees
// the fault of the camera the test stopped in the fault list, and acknowledges it.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_FAULT_SUBJECT           the device the fault names
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const subject = need('PEERCAM_FAULT_SUBJECT');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'), 'Operator');
    step(result, 'login');
    const item = page.locator('ul.faults li[data-kind="camera_offline"]', { hasText: subject });
    await item.waitFor({ timeout: 20000 });
    expect((await item.getAttribute('data-state')) === 'open', 'the fault is open');
    result.fault = Number(await item.getAttribute('data-fault'));
    step(result, 'listed');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-faults');
    await item.getByRole('button', { name: `Acknowledge fault ${result.fault}` }).click();
    await page.locator(`ul.faults li[data-fault="${result.fault}"][data-state="acknowledged"]`).waitFor({ timeout: 10000 });
    step(result, 'acknowledged');
  } finally {
    await browser.close();
  }
});
