// Fleet upgrades in the operator's page (H.626.4 8.11.1, issue 18 item 3): the operator
// starts a campaign on cameras whose install fails; the canary fails and the campaign
// pauses by itself; the page shows it paused with the failure reasons; the operator aborts.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_PACKAGE                 the package's SHA-256
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line (campaign, reason); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    page.on('dialog', (d) => d.accept());
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'), 'Operator');
    step(result, 'login');
    await page.locator('nav.operator-tabs a[data-tab="campaigns"]').click();
    await page.getByRole('heading', { level: 1, name: 'Upgrades' }).waitFor();
    const form = page.locator('form.campaign-create');
    await form.getByLabel('Package').selectOption(need('PEERCAM_PACKAGE'));
    await form.getByLabel('Name').fill('Canary test');
    await form.getByLabel('Canary share (%)').fill('30');
    await form.getByLabel('Wave size (devices)').fill('1');
    await form.getByLabel('Soak time between stages (s)').fill('1');
    await form.getByLabel('… after at least (results)').fill('1');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-campaign-new');
    await form.getByRole('button', { name: 'Start campaign' }).click();
    step(result, 'created');
    const detail = page.locator('section.campaign-detail[data-state="paused"]');
    await detail.waitFor({ timeout: 30000 });
    result.campaign = Number(await detail.getAttribute('data-campaign'));
    result.reason = await detail.locator('table.campaign-devices tr[data-state="failed"] td.reason').first().textContent();
    const why = await detail.locator('.campaign-reason').textContent();
    expect(why.includes('failed in stage 0'), `the pause names the canary's failures: ${why}`);
    expect(result.reason.includes('no release keys'), `the failure reason is shown: ${result.reason}`);
    expect(await detail.locator('table.campaign-devices tr[data-state="pending"]').count() === 2, 'the waves wait');
    step(result, 'paused');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-campaign-paused', { scrollTo: 'section.campaign-detail' });
    await detail.getByRole('button', { name: `Abort campaign ${result.campaign}` }).click();
    await page.locator(`section.campaign-detail[data-state="aborted"]`).waitFor({ timeout: 10000 });
    step(result, 'aborted');
  } finally {
    await browser.close();
  }
});
