// Two-factor sign-in set up and used in the web client (H.626.4 6.2, issue 18 item 2): an
// owner turns it on from the Account page (key read off the page, codes computed here with
// node's crypto, RFC 6238), gets ten recovery codes, logs in again with one of them, sees
// nine left, and turns it off with the password and a code.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner (two-factor sign-in off)
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line; exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, step, totp } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const user = need('PEERCAM_WEB_USER');
  const password = need('PEERCAM_WEB_PASSWORD');
  const browser = await launch();
  try {
    const { page } = await newUser(browser);
    await login(page, base, user, password);
    await page.goto(`${base}/#/account`);
    const card = page.locator('#totp');
    await page.locator('#totp[data-state="off"]').waitFor({ timeout: 10000 });
    step(result, 'off');
    await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
    const secret = await page.locator('#totp-secret').getAttribute('data-secret');
    expect(/^[A-Z2-7]{32}$/.test(secret ?? ''), `a base32 key of 20 bytes: ${secret}`);
    const uri = await page.locator('#totp-uri').getAttribute('href');
    expect(uri.startsWith('otpauth://totp/') && uri.includes(`secret=${secret}`), `the otpauth link: ${uri}`);
    if (process.env.PEERCAM_SHOTS) await shots(page, process.env.PEERCAM_SHOTS, 'account-totp-enrol');
    // A wrong code is refused in the form.
    await card.getByLabel('Code from your authenticator app').fill('000000' === totp(secret, Date.now() / 1000) ? '111111' : '000000');
    await page.getByRole('button', { name: 'Turn on' }).click();
    await card.locator('.error').waitFor({ timeout: 10000 });
    step(result, 'wrong code refused');
    await card.getByLabel('Code from your authenticator app').fill(totp(secret, Date.now() / 1000));
    await page.getByRole('button', { name: 'Turn on' }).click();
    const codes = await page.locator('#totp-recovery li').allInnerTexts();
    expect(codes.length === 10, `ten recovery codes: ${codes.length}`);
    result.recovery_codes = codes.length;
    await page.getByRole('button', { name: 'I have saved them' }).click();
    await page.locator('#totp[data-state="on"]').waitFor({ timeout: 10000 });
    step(result, 'on');
    // Log in again: the code is asked; a recovery code serves once.
    await page.evaluate(() => localStorage.clear());
    await page.goto(`${base}/#/login`);
    await page.reload();
    await page.getByLabel('Phone number or user name').fill(user);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    const code = page.getByLabel('Code from your authenticator app');
    await code.waitFor({ timeout: 10000 });
    await code.fill(codes[0].trim());
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor({ timeout: 10000 });
    step(result, 'recovery login');
    await page.goto(`${base}/#/account`);
    const state = await page.locator('#totp-state').innerText();
    expect(state.includes('9 recovery codes left'), `nine left: ${state}`);
    // Off: the password and the next step's code (the enrolment used this one).
    const off = page.getByRole('form', { name: 'Turn off two-factor sign-in' });
    await off.getByLabel('Password').fill(password);
    await off.getByLabel('Code from your authenticator app, or a recovery code').fill(totp(secret, Date.now() / 1000 + 30));
    await page.getByRole('button', { name: 'Turn off two-factor sign-in' }).click();
    await page.locator('#totp[data-state="off"]').waitFor({ timeout: 10000 });
    result.turned_off = true;
    step(result, 'off again');
  } finally {
    await browser.close();
  }
});
