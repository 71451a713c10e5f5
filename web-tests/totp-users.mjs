// Two-factor sign-in and the Users tab of the operator portal (H.626.4 6.2, issue 18 item 2):
// the operator logs in with its password, is asked for the TOTP code (computed here from the
// secret with node's crypto, RFC 6238), opens Users, finds a sign-up and approves it.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_TOTP_SECRET             the operator's TOTP secret (base32)
//   PEERCAM_PENDING_PHONE           an account waiting for approval
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, need, newUser, open, run, shots, step, totp } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const phone = need('PEERCAM_PENDING_PHONE');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await open(page, `${base}/#/login`);
    await page.getByLabel('Phone number or user name').fill(need('PEERCAM_WEB_USER'));
    await page.getByLabel('Password', { exact: true }).fill(need('PEERCAM_WEB_PASSWORD'));
    await page.getByRole('button', { name: 'Log in' }).click();
    const code = page.getByLabel('Code from your authenticator app');
    await code.waitFor({ timeout: 10000 });
    step(result, 'code asked');
    // The step after the one the enrolment used (one step of drift is allowed).
    await code.fill(totp(need('PEERCAM_TOTP_SECRET'), Date.now() / 1000 + 30));
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Operator' }).waitFor({ timeout: 10000 });
    step(result, 'login');
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
    await page.getByLabel('Search accounts', { exact: true }).fill(phone.slice(1));
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.locator(`ul.users li[data-login="${phone}"]`);
    await row.waitFor({ timeout: 10000 });
    expect((await row.getAttribute('data-status')) === 'pending_approval', 'the sign-up waits');
    step(result, 'found');
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'operator-users');
    await row.getByRole('button', { name: `Approve ${phone}` }).click();
    await page.locator(`ul.users li[data-login="${phone}"][data-status="active"]`).waitFor({ timeout: 10000 });
    result.approved = phone;
    step(result, 'approved');
  } finally {
    await browser.close();
  }
});
