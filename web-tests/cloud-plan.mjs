// Cloud storage plan and usage in the browser (H.626.4 6.1.13): the camera's recordings page
// shows the account's plan and its pool's use on the cloud storage unit; the owner chooses a
// paid plan there and the card shows it at once.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
//   PEERCAM_DEVICE                  a camera recording to the cloud
//   PEERCAM_PLAN                    the plan to choose (its name is shown upper case)
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, run, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const plan = need('PEERCAM_PLAN');
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await page.goto(`${base}/#/device/${encodeURIComponent(device)}/recordings`);
    const name = page.locator('#cloud-plan-name');
    await name.waitFor({ timeout: 20000 }).catch(async (e) => {
      result.page = (await page.locator('main').innerText()).slice(0, 2000);
      result.problems = problems;
      throw e;
    });
    result.before = await name.textContent();
    expect(result.before.includes('Free'), `the free plan is shown, got ${result.before}`);
    result.usage = await page.locator('#cloud-usage').textContent();
    expect(/ used$/.test(result.usage.trim()), `the usage is shown, got ${result.usage}`);
    result.meter = await page.locator('#cloud-meter').evaluate((m) => ({ value: m.value, max: m.max }));
    expect(result.meter.value > 0 && result.meter.value <= result.meter.max, `the meter shows the pool's use: ${JSON.stringify(result.meter)}`);
    step(result, 'shown');

    await page.locator('#cloud-plan-select').selectOption(plan);
    await page.locator('#cloud-plan-save').click();
    await page.waitForFunction((p) => document.querySelector('#cloud-plan-name')?.textContent.includes(p.toUpperCase()), plan, { timeout: 10000 });
    result.after = await name.textContent();
    step(result, 'changed');
    expect(problems.length === 0, `no page errors: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
