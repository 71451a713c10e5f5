// Equipment in the operator's portal (H.626.4 6.1.1, 6.2): a new user signs up by phone in
// the browser and waits; the operator approves the account, opens the Equipment tab, finds
// a provisioned camera by searching, assigns it to the new account (confirmed in a dialog);
// the user logs in and sees the camera in their device list.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the operator
//   PEERCAM_SMS_OUTBOX              the CMU's SMS outbox directory
//   PEERCAM_PHONE                   the new user's phone number
//   PEERCAM_CAMERA                  a provisioned, unassigned camera's id
//   PEERCAM_SHOTS                   optional: where to write screenshots
// Output: one JSON line (`assigned`: the camera id the user sees); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, smsCode, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const phone = need('PEERCAM_PHONE');
  const camera = need('PEERCAM_CAMERA');
  const outbox = need('PEERCAM_SMS_OUTBOX');
  const password = 'equipment pass word';
  const shotDir = process.env.PEERCAM_SHOTS;
  const browser = await launch();
  try {
    // The new user signs up (6.1.1).
    const user = await newUser(browser);
    const p = user.page;
    await p.goto(`${base}/`);
    await p.getByRole('link', { name: /Sign up/ }).click();
    await p.getByLabel('Mobile phone number').fill(phone);
    await p.getByLabel('Password', { exact: true }).fill(password);
    await p.getByLabel('Password again').fill(password);
    await p.getByRole('button', { name: 'Send code' }).click();
    await p.getByLabel('Code from the SMS').fill(await smsCode(outbox, phone));
    await p.getByRole('button', { name: 'Confirm' }).click();
    await p.getByText(/waits for the operator/).waitFor();
    step(result, 'signed up');

    // The operator approves it...
    const op = await newUser(browser);
    await login(op.page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'), 'Operator');
    const pending = op.page.locator(`li[data-login="${phone}"]`);
    await pending.getByRole('button', { name: `Approve ${phone}` }).click();
    await pending.waitFor({ state: 'detached' });
    step(result, 'approved');

    // ...opens Equipment, finds the camera and assigns it to the account.
    await op.page.getByRole('link', { name: 'Equipment' }).click();
    await op.page.getByRole('heading', { level: 1, name: 'Equipment' }).waitFor();
    await op.page.getByLabel('State').selectOption('unassigned');
    await op.page.getByLabel('Search', { exact: true }).fill(camera);
    await op.page.getByRole('button', { name: 'Search', exact: true }).click();
    const row = op.page.locator(`tr[data-device-id="${camera}"]`);
    await row.waitFor();
    expect((await row.getAttribute('data-state')) === 'unassigned', 'the camera is unassigned');
    if (shotDir) await shots(op.page, shotDir, 'operator-equipment');
    await row.getByRole('button', { name: `Assign ${camera}` }).click();
    const dialog = op.page.getByRole('dialog', { name: `Assign ${camera}` });
    await dialog.getByLabel('Owner account').fill(phone);
    await dialog.getByLabel('Name in their list').fill('Shop entrance');
    if (shotDir) await shots(op.page, shotDir, 'operator-equipment-assign');
    await dialog.getByRole('button', { name: 'Assign', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await op.page.getByLabel('State').selectOption('assigned');
    await op.page.locator(`tr[data-device-id="${camera}"][data-state="assigned"]`).waitFor();
    step(result, 'assigned');

    // The user logs in and sees the camera in their list.
    await login(p, base, phone, password);
    const mine = p.locator(`li.device[data-device-id="${camera}"]`);
    await mine.waitFor({ timeout: 15000 });
    expect((await mine.textContent()).includes('Shop entrance'), 'the name the operator gave');
    if (shotDir) await shots(p, shotDir, 'owner-assigned-camera');
    result.assigned = camera;
    step(result, 'the user sees it');
    expect(!user.problems.length && !op.problems.length, `no page errors: ${[...user.problems, ...op.problems].join('; ')}`);
  } finally {
    await browser.close();
  }
});
