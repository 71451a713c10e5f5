// The alarm list in the browser (H.626.4 8.8, 6.1.9): older alarms page in with "Load more";
// a kind filter narrows the list, is kept in the address and survives a reload; an alarm
// opened by its link (#/alarms/{id}, as in an SMS) is shown even when it is not on the first
// page; "Play from 5 s before" opens the camera's recordings with the timeline's cursor 5 s
// before the alarm.
//
// Inputs (environment):
//   PEERCAM_WEB_URL                 the CMU
//   PEERCAM_WEB_USER / _PASSWORD    the owner
//   PEERCAM_WEB_DEVICE              the camera's device id
//   PEERCAM_WEB_OLDEST              the platform id of the oldest alarm (not on the first page)
// Output: one JSON line (`play_alarm`: the alarm played from, `cursor`: the timeline's
// cursor, Unix ms); exit status 1 on failure.

import { expect, launch, login, need, newUser, open, run, shots, step } from './lib.mjs';

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_WEB_DEVICE');
  const oldest = need('PEERCAM_WEB_OLDEST');
  const browser = await launch();
  try {
    const { page, problems } = await newUser(browser);
    await login(page, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
    const items = page.locator('#alarm-list li.alarm');
    await items.first().waitFor({ timeout: 10000 });
    const first = await items.count();
    await page.getByRole('button', { name: 'Load more' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('#alarm-list li.alarm').length > n, first, { timeout: 10000 });
    result.paged = [first, await items.count()];
    step(result, 'load more', result.paged);

    // Filter by kind: only input alarms, in the address, after a reload too.
    await page.getByLabel('Kind', { exact: true }).selectOption('input');
    await page.waitForFunction(() => {
      const li = [...document.querySelectorAll('#alarm-list li.alarm')];
      return li.length > 0 && li.every((e) => e.dataset.kind === 'input');
    }, null, { timeout: 10000 });
    expect(page.url().includes('#/alarms?kind=input'), `the filter is in the address (${page.url()})`);
    const inputs = await items.count();
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Alarms' }).waitFor();
    await items.first().waitFor({ timeout: 10000 });
    expect(await page.getByLabel('Kind', { exact: true }).inputValue() === 'input', 'the kind filter after reload');
    expect(await items.count() === inputs, 'the same list after reload');
    expect((await items.evaluateAll((els) => els.map((e) => e.dataset.kind))).every((k) => k === 'input'), 'only input alarms after reload');
    result.inputs = inputs;
    step(result, 'filtered', inputs);
    await shots(page, process.env.PEERCAM_WEB_SHOTS, 'alarm-list');

    // An alarm by its link, not on the first page.
    await open(page, `${base}/#/alarms/${oldest}`);
    await page.locator(`#alarm-${oldest}.highlight`).waitFor({ timeout: 10000 });
    expect(await page.locator(`#alarm-pinned #alarm-${oldest}`).count() === 1, 'shown above the list');
    step(result, 'opened by link');

    // Play from 5 s before the newest input alarm.
    await open(page, `${base}/#/alarms?kind=input`);
    const play = items.first();
    await play.waitFor({ timeout: 10000 });
    result.play_alarm = Number((await play.getAttribute('id')).replace('alarm-', ''));
    await play.getByRole('link', { name: /5 seconds before/ }).click();
    await page.waitForURL((u) => u.hash.startsWith(`#/device/${device}/recordings?at=`));
    const at = Number(new URL(page.url()).hash.split('at=')[1]);
    const cursor = await page.waitForFunction(
      (want) => window.peercam.playback?.timeline?.cursor === want && window.peercam.playback.timeline.cursor,
      at,
      { timeout: 10000 },
    );
    result.cursor = await cursor.jsonValue();
    const day = await page.locator('#pb-day').inputValue();
    result.day = day;
    step(result, 'play from 5 s before', result.cursor);
    expect(!problems.length, problems.join('; '));
  } finally {
    await browser.close();
  }
});
