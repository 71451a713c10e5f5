// Statistics, reports, invoices and announcements in the portals (H.626.4 6.2, clause 7
// accounting): the operator opens the Reports tab (charts drawn as SVG), downloads the
// monthly report as CSV, publishes an announcement on the Billing tab; the owner sees the
// announcement on the devices page and the usage of the month on the account page.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_OWNER / _OWNER_PASSWORD an owner with usage this month
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line (the report's text in `report`); exit status 1 on failure.

import { readFileSync } from 'node:fs';
import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'), 'Operator');
    step(result, 'login');
    await page.getByRole('link', { name: 'Reports' }).click();
    await page.getByRole('heading', { level: 1, name: 'Reports' }).waitFor();
    const charts = page.locator('figure[data-chart] svg');
    await charts.first().waitFor({ timeout: 10000 });
    result.charts = await charts.count();
    expect(result.charts === 7, `seven charts, got ${result.charts}`);
    expect(await page.locator('figure[data-chart="Live minutes by path"] polyline, figure[data-chart="Live minutes by path"] circle').count() > 0, 'live minutes drawn');
    step(result, 'charts');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-reports');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.locator('#report-monthly').click()]);
    result.file = dl.suggestedFilename();
    result.report = readFileSync(await dl.path(), 'utf8');
    expect(result.report.startsWith('period,account,login,kind,quantity,records'), 'the report header');
    step(result, 'downloaded');
    await page.getByRole('link', { name: 'Billing' }).click();
    await page.locator('#invoices table').waitFor({ timeout: 10000 });
    const form = page.locator('#announce-form');
    await form.getByLabel('Title').fill('Maintenance tonight');
    await form.getByLabel('Text').fill('The relay is upgraded at 02:00 UTC.');
    await form.getByRole('button', { name: 'Publish' }).click();
    await page.locator('#announcements li', { hasText: 'Maintenance tonight' }).waitFor({ timeout: 10000 });
    step(result, 'announced');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-billing');

    const user = await newUser(browser);
    await login(user.page, base, need('PEERCAM_OWNER'), need('PEERCAM_OWNER_PASSWORD'));
    await user.page.locator('article.announcement', { hasText: 'Maintenance tonight' }).waitFor({ timeout: 10000 });
    step(result, 'user sees the announcement');
    await user.page.goto(`${base}/#/account`);
    const direct = user.page.locator('#usage tr[data-kind="live_s_direct"]');
    await direct.waitFor({ timeout: 10000 });
    result.usage = await direct.innerText();
    result.plan = await user.page.locator('#usage-plan').innerText();
    await user.page.locator('#cloud-plan-name').waitFor({ timeout: 10000 });
    step(result, 'user sees usage and plan');
    if (process.env.PEERCAM_SHOTS) await shots(user.page, process.env.PEERCAM_SHOTS, 'user-usage', { scrollTo: '#usage' });
  } finally {
    await browser.close();
  }
});
