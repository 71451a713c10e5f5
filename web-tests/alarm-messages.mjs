// SMS templates and notification channels in the browser (H.626.4 6.1.9): typing in a
// template shows its preview (text, encoding, SMS segments) from the server; an unknown
// placeholder and an over-long template show the server's refusal at the field; a valid one
// saves. SMS switched off for motion alarms stays off after a reload.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
// Output: one JSON line (`template`: the motion template saved); exit status 1 on failure.

import { expect, launch, login, need, newUser, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    await page.getByRole('link', { name: 'Messages and notifications' }).click();
    await page.getByRole('heading', { level: 1, name: 'Alarm messages and notifications' }).waitFor();
    const area = page.locator('textarea[name=motion]');
    const preview = page.locator(`#${await area.getAttribute('id')}-preview`);
    const err = page.locator(`#${await area.getAttribute('id')}-err`);
    await preview.locator('.preview-cost').filter({ hasText: 'segment' }).waitFor({ timeout: 10000 });
    step(result, 'opened');

    // Typing: the preview follows, with the encoding and the segment count (a short UCS-2
    // text is one SMS, a long GSM-7 one two or more).
    await area.fill('');
    await area.pressSequentially('Tür offen ⚠ bei {camera}', { delay: 5 });
    await preview.filter({ hasText: 'Tür offen ⚠ bei Front door' }).locator('.preview-cost').filter({ hasText: 'UCS-2' }).waitFor({ timeout: 10000 });
    result.preview = await preview.innerText();
    expect(await preview.getAttribute('data-segments') === '1', 'a short text is one SMS');
    step(result, 'preview', result.preview.replace(/\n/g, ' | '));
    const long = `Motion on {camera} at {time}. ${'Someone is at the door. '.repeat(8)}{link}`;
    await area.fill(long);
    await page.waitForFunction((id) => {
      const p = document.getElementById(id);
      return p?.dataset.encoding === 'gsm7' && Number(p.dataset.segments) >= 2;
    }, `${await area.getAttribute('id')}-preview`, { timeout: 10000 });
    result.segments = Number(await preview.getAttribute('data-segments'));
    step(result, 'segments', result.segments);

    // An unknown placeholder: the preview's refusal at the field.
    await area.fill('Motion on {camera} at {when}');
    await err.filter({ hasText: 'unknown placeholder {when}' }).waitFor({ timeout: 10000 });
    expect(await area.getAttribute('aria-invalid') === 'true', 'marked invalid');
    step(result, 'unknown placeholder refused');

    // Over-long, saved anyway: the PUT's 422 names templates.motion, shown at the field.
    await area.fill('x'.repeat(400));
    await page.getByRole('button', { name: 'Save templates' }).click();
    await err.filter({ hasText: 'at most 320' }).waitFor({ timeout: 10000 });
    await page.locator('#templates-form > .error').filter({ hasText: /./ }).waitFor();
    step(result, 'over-long refused', await err.innerText());

    const good = 'Motion on {camera} at {time} (web). {link}';
    await area.fill(good);
    await page.getByRole('button', { name: 'Save templates' }).click();
    await page.locator('#templates-status').filter({ hasText: 'Templates saved.' }).waitFor({ timeout: 10000 });
    result.template = good;
    step(result, 'saved');
    await shots(page, process.env.PEERCAM_WEB_SHOTS, 'alarm-templates');

    // Notifications: no SMS for motion alarms.
    const sms = page.getByRole('checkbox', { name: 'Motion: SMS' });
    expect(await sms.isChecked(), 'SMS on by default for motion');
    await sms.uncheck();
    await page.getByRole('button', { name: 'Save notification settings' }).click();
    await page.locator('#notify-status').filter({ hasText: 'saved' }).waitFor({ timeout: 10000 });
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Alarm messages and notifications' }).waitFor();
    await page.getByRole('checkbox', { name: 'Motion: SMS' }).waitFor();
    expect(!(await page.getByRole('checkbox', { name: 'Motion: SMS' }).isChecked()), 'SMS off after reload');
    expect(await page.getByRole('checkbox', { name: 'Motion: Push' }).isChecked(), 'push still on');
    expect(await page.locator('textarea[name=motion]').inputValue() === good, 'the template after reload');
    expect(!problems.length, problems.join('; '));
    step(result, 'notifications saved');
  } finally {
    await browser.close();
  }
});
