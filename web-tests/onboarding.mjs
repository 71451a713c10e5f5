// The web client end to end (H.626.4 6.1.1, 8.2, 8.5, 8.6, 8.9.1, 6.3):
// sign-up by phone with the SMS code -> the operator approves in the browser -> login ->
// bind two cameras -> both listed online (with thumbnails) -> PTZ through the live page -> settings saved ->
// a sub-account created and one camera shared -> the sub-account sees only that camera ->
// password change, logout, login with the new password.
// Optional (PEERCAM_WEB_LIVE=1): the live view plays over WebRTC (see live.mjs for the checks).
//
// Inputs (environment):
//   PEERCAM_WEB_URL         the CMU, e.g. https://127.0.0.1:7000
//   PEERCAM_ADMIN_PASSWORD  the operator's password (user `admin`)
//   PEERCAM_SMS_OUTBOX      the CMU's SMS outbox directory
//   PEERCAM_DEVICES         two device ids, comma separated
//   PEERCAM_BIND_CODES      their bind codes, comma separated
//   PEERCAM_PHONE           the phone to sign up (default +15550630001)
//   PEERCAM_WEB_SHOTS       where to write screenshots (optional)
//   PEERCAM_WEB_LIVE        1: also play the live view
// Output: one JSON line; exit status 1 on failure.

import { checkPlaying, expect, launch, login, need, newUser, run, shots, smsCode, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const adminPassword = need('PEERCAM_ADMIN_PASSWORD');
  const outbox = need('PEERCAM_SMS_OUTBOX');
  const devices = need('PEERCAM_DEVICES').split(',');
  const codes = need('PEERCAM_BIND_CODES').split(',');
  const phone = process.env.PEERCAM_PHONE || '+15550630001';
  const shotDir = process.env.PEERCAM_WEB_SHOTS;
  const password = 'a long enough password';
  const newPassword = 'another long password';
  result.screenshots = [];
  const shot = async (page, name) => result.screenshots.push(...(await shots(page, shotDir, name)));

  const browser = await launch();
  result.browser = browser.version();
  try {
    // --- The page itself: served with a strict policy.
    const owner = await newUser(browser);
    const p = owner.page;
    const resp = await p.goto(`${base}/`);
    const csp = resp.headers()['content-security-policy'] ?? '';
    expect(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `a strict CSP, got "${csp}"`);
    await p.getByRole('heading', { level: 1, name: 'Log in' }).waitFor();
    await shot(p, '01-login');
    step(result, 'login page');

    // --- Sign-up by phone (6.1.1).
    await p.getByRole('link', { name: /Sign up/ }).click();
    await p.getByLabel('Mobile phone number').fill(phone);
    await p.getByLabel('Password', { exact: true }).fill(password);
    await p.getByLabel('Password again').fill(`${password}x`);
    await p.getByRole('button', { name: 'Send code' }).click();
    await p.getByText('The two passwords differ.').waitFor();
    result.mismatch_error = true;
    await p.getByLabel('Password again').fill(password);
    await p.getByRole('button', { name: 'Send code' }).click();
    await p.getByLabel('Code from the SMS').waitFor();
    const code = await smsCode(outbox, phone);
    await p.getByLabel('Code from the SMS').fill(code === '000000' ? '111111' : '000000');
    await p.getByRole('button', { name: 'Confirm' }).click();
    result.wrong_code_message = await p.getByRole('alert').filter({ hasText: /code/i }).first().textContent();
    await p.getByLabel('Code from the SMS').fill(code);
    await shot(p, '02-signup-code');
    await p.getByRole('button', { name: 'Confirm' }).click();
    await p.getByText(/waits for the operator/).waitFor();
    step(result, 'signed up');

    // A login before approval says why it cannot go on.
    await p.goto(`${base}/#/login`);
    await p.getByLabel('Phone number or user name').fill(phone);
    await p.getByLabel('Password', { exact: true }).fill(password);
    await p.getByRole('button', { name: 'Log in' }).click();
    result.pending_login_message = await p.locator('form .error:not([hidden])').textContent();

    // --- The operator approves (6.1.1, 6.2).
    const op = await newUser(browser);
    await login(op.page, base, 'admin', adminPassword, 'Operator');
    const pendingItem = op.page.locator(`li[data-login="${phone}"]`);
    await pendingItem.waitFor();
    await shot(op.page, '03-operator');
    await op.page.getByRole('button', { name: `Approve ${phone}` }).click();
    await pendingItem.waitFor({ state: 'detached' });
    step(result, 'approved');

    // --- The owner logs in and binds two cameras (8.2).
    await login(p, base, phone, password);
    await p.getByText('No devices yet').waitFor();
    // A wrong bind code is refused with a message that says what to do.
    await p.getByLabel('Device id').fill(devices[0]);
    await p.getByLabel('Bind code').fill('AAAA-AAAA-AAAA');
    await p.getByRole('button', { name: 'Add camera' }).click();
    result.wrong_bind_message = await p.locator('form .error:not([hidden])').textContent();
    for (const [i, id] of devices.entries()) {
      await p.getByLabel('Device id').fill(id);
      await p.getByLabel('Bind code').fill(codes[i]);
      await p.getByLabel('Name (optional)').fill(i === 0 ? 'Front door' : 'Garden');
      await p.getByRole('button', { name: 'Add camera' }).click();
      await p.locator(`li[data-device-id="${id}"]`).waitFor();
    }
    for (const id of devices) await p.locator(`li[data-device-id="${id}"][data-online="true"]`).waitFor();
    result.owner_devices = await p.locator('li[data-device-id]').evaluateAll((els) => els.map((e) => ({ id: e.dataset.deviceId, online: e.dataset.online === 'true' })));
    await shot(p, '04-devices');
    step(result, 'bound');

    // --- Live view page: controls, PTZ through the platform (8.5).
    await p.locator(`li[data-device-id="${devices[0]}"]`).getByRole('link', { name: 'Live view' }).click();
    await p.getByRole('heading', { level: 1, name: 'Front door: live view' }).waitFor();
    await p.getByText(/^Pan -?\d/).waitFor();
    const panRight = p.getByRole('button', { name: 'Pan right' });
    await panRight.hover();
    await p.mouse.down();
    await p.waitForTimeout(700);
    await p.mouse.up();
    await p.getByText(/^Pan (0\.[1-9]|1\.)/).waitFor();
    result.ptz_after_pan = await p.getByText(/^Pan /).textContent();
    // Keyboard: hold Enter on "Tilt up".
    await p.getByRole('button', { name: 'Tilt up' }).focus();
    await p.keyboard.down('Enter');
    await p.waitForTimeout(500);
    await p.keyboard.up('Enter');
    await p.getByText(/tilt (0\.[1-9]|1\.)/).waitFor();
    result.ptz_after_tilt = await p.getByText(/^Pan /).textContent();
    await p.getByLabel('Slot').fill('3');
    await p.getByLabel('Name', { exact: true }).fill('Gate');
    await p.getByRole('button', { name: 'Save current position' }).click();
    await p.getByRole('button', { name: 'Go to Gate' }).waitFor();
    step(result, 'ptz');
    if (process.env.PEERCAM_WEB_LIVE === '1') {
      result.live = await checkPlaying(p, { shotDir, shot });
      step(result, 'live');
      // Click to center: a click right of the middle pans right.
      await p.getByRole('button', { name: 'Play', exact: true }).click();
      await p.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
      const panOf = async () => Number((await p.getByText(/^Pan /).textContent()).match(/^Pan (-?[0-9.]+)/)[1]);
      const before = await panOf();
      const box = await p.locator('video').boundingBox();
      await p.mouse.click(box.x + box.width * 0.5 + 60, box.y + box.height / 2);
      await p.waitForFunction((b) => {
        const m = [...document.querySelectorAll('p')].map((e) => e.textContent).find((t) => /^Pan /.test(t));
        return m && Number(m.match(/^Pan (-?[0-9.]+)/)[1]) > b + 0.01;
      }, before, { timeout: 10000 });
      result.click_to_center = { before, after: await panOf() };
      await p.getByRole('button', { name: 'Stop' }).click();
      step(result, 'click to center');
    } else {
      result.live = 'skipped: PEERCAM_WEB_LIVE is not 1';
      await shot(p, '05-live');
    }

    // --- Settings (8.9.1) and WLAN (6.1.11).
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByLabel('Caption').fill('FRONT DOOR');
    await p.getByLabel('Highest frame rate (fps)').fill('15');
    await p.getByRole('button', { name: 'Save settings' }).click();
    await p.getByText('Settings saved on the camera.').waitFor();
    await p.getByText(/Revision [1-9]/).waitFor();
    result.settings_caption = await p.getByLabel('Caption').inputValue();
    await p.getByRole('button', { name: 'Use office' }).waitFor();
    await shot(p, '06-settings');
    step(result, 'settings');

    // --- Playback tab: the day's timeline (no NVR here: the SD card's record list).
    await p.getByRole('link', { name: 'Playback' }).click();
    await p.getByRole('heading', { level: 1, name: 'Front door: playback' }).waitFor();
    await p.locator('#pb-summary:not(:empty)').waitFor();
    result.recordings = (await p.locator('#pb-summary').textContent()).trim();
    step(result, 'recordings');

    // --- Sharing (8.6): a sub-account, one camera shared with it.
    await p.getByRole('link', { name: 'Sharing' }).click();
    await p.getByText('Not shared with anyone.').waitFor();
    await p.getByLabel('User name').fill('kid');
    await p.getByLabel('Password', { exact: true }).fill('kid password 1');
    await p.getByRole('button', { name: 'Create sub-account' }).click();
    await p.getByRole('button', { name: 'Delete sub-account kid' }).waitFor();
    await p.getByLabel('Sub-account', { exact: true }).selectOption('kid');
    await p.getByLabel('Pan, tilt, zoom').check();
    await p.getByRole('button', { name: 'Share', exact: true }).click();
    await p.locator('li[data-username="kid"]').waitFor();
    result.share = await p.locator('li[data-username="kid"]').textContent();
    await shot(p, '07-sharing');
    step(result, 'shared');

    const kid = await newUser(browser);
    await login(kid.page, base, 'kid', 'kid password 1');
    await kid.page.locator('li[data-device-id]').first().waitFor();
    result.sub_devices = await kid.page.locator('li[data-device-id]').evaluateAll((els) => els.map((e) => e.dataset.deviceId));
    result.sub_actions = await kid.page.locator('li[data-device-id] .actions').innerText();
    await shot(kid.page, '08-subaccount');
    step(result, 'sub sees shared');

    // --- Password change, logout, login with the new one.
    await p.getByRole('link', { name: 'Account' }).click();
    await p.getByLabel('Current password').fill(password);
    await p.getByLabel('New password', { exact: true }).fill(newPassword);
    await p.getByLabel('New password again').fill(newPassword);
    await p.getByRole('button', { name: 'Change password' }).click();
    await p.getByText('Password changed.').waitFor();
    await shot(p, '09-account');
    await p.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Log out' }).click();
    await p.getByRole('heading', { level: 1, name: 'Log in' }).waitFor();
    await login(p, base, phone, newPassword);
    step(result, 'password changed');

    // --- WLAN (6.1.11), last: the camera reconnects through the new network.
    await p.goto(`${base}/#/device/${encodeURIComponent(devices[0])}/settings`);
    const wlan = p.locator('section[aria-labelledby="wlan-h"]');
    await wlan.getByRole('button', { name: 'Use office' }).click();
    await wlan.getByLabel('Password', { exact: true }).fill('officepass');
    await wlan.getByRole('button', { name: 'Switch network' }).click();
    await p.getByText('The camera is switching networks.').waitFor();
    await wlan.getByText(/Last switch to “office”/).waitFor();
    result.wlan = (await wlan.innerText()).split('\n').filter((l) => l.trim()).slice(1, 3).join(' | ');
    step(result, 'wlan');

    result.update = await p.evaluate(() => window.peercam.update);
    result.service_worker = await p.evaluate(async () => !!(await navigator.serviceWorker?.getRegistration?.()));
    result.problems = [...owner.problems, ...op.problems, ...kid.problems];
    expect(result.problems.length === 0, `no page errors or CSP violations: ${result.problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
