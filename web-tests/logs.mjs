// The operator's logs in the page (H.626.4 6.1.14, issue 18 item 4): the operator opens
// the Logs tab, filters the audit log by an action prefix, exports it as CSV, and switches
// to the system log.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line (rows, csv header, system events); exit status 1 on failure.

import { readFileSync } from 'node:fs';
import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'), 'Operator');
    await page.locator('nav.operator-tabs a[data-tab="logs"]').click();
    await page.getByRole('heading', { level: 1, name: 'Logs' }).waitFor();
    const rows = page.locator('table.logs tbody tr');
    await rows.first().waitFor();
    step(result, 'listed');
    const form = page.locator('form.log-filters');
    await form.getByLabel('Action (or event)').fill('account.*');
    await form.getByRole('button', { name: 'Search' }).click();
    await page.waitForFunction(() => {
      const trs = [...document.querySelectorAll('table.logs tbody tr')];
      return trs.length > 0 && trs.every((tr) => (tr.dataset.action ?? '').startsWith('account.'));
    }, null, { timeout: 10000 });
    result.rows = await rows.count();
    step(result, 'filtered');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-logs');
    const [dl] = await Promise.all([page.waitForEvent('download'), form.getByRole('button', { name: 'Export CSV' }).click()]);
    const text = readFileSync(await dl.path(), 'utf8');
    result.csvHeader = text.split('\r\n')[0];
    expect(text.split('\r\n').slice(1).filter(Boolean).every((l) => l.split(',')[3].startsWith('account.')), 'the export has the filter');
    step(result, 'exported');
    await form.getByLabel('Action (or event)').fill('');
    await form.getByLabel('Log').selectOption('syslog');
    await page.waitForFunction(() => [...document.querySelectorAll('table.logs tbody tr')].some((tr) => tr.dataset.action === 'unit.start'), null, { timeout: 10000 });
    result.system = await page.locator('table.logs tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.action));
    step(result, 'system log');
  } finally {
    await browser.close();
  }
});
