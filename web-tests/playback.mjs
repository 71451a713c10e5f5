// Playback of recordings in the browser (H.626.4 8.7.2.2 over WebRTC, issue 7): the device
// list shows the camera's thumbnail; on the Playback tab the day's timeline comes from the
// NVR's record list; clicking it plays from there (the video advances and is not blank);
// 4x moves the position about four times as fast as the wall clock, reverse moves it
// backwards; pause stops the frames and each frame step shows exactly one frame, 40 ms
// (25 fps) forward or back; arrow keys move the timeline's cursor; export downloads an MP4
// that ffprobe reads as H.264 with the frame count the recorder announced; opened at a
// moment (`?at=`, the Alarms page's "Play from 5 s before") it plays from there.
//
// Inputs (environment):
//   PEERCAM_WEB_URL          the CMU
//   PEERCAM_WEB_USER         the owner's login, and PEERCAM_WEB_PASSWORD
//   PEERCAM_DEVICE           the camera
//   PEERCAM_NVR              the NVR recording it
//   PEERCAM_SPAN_START_MS    start of a recorded span (Unix ms) with at least 12 s after it
//   PEERCAM_EXPORT_DIR       where to save the exported file
//   PEERCAM_WEB_SHOTS        screenshots (optional)
// Output: one JSON line; exit status 1 on failure.

import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, frameSignature, launch, login, need, newUser, run, shots, step } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hhmmss = (ms) => new Date(ms).toISOString().slice(11, 19); // the context runs in UTC

await run(async (result) => {
  const base = need('PEERCAM_WEB_URL').replace(/\/$/, '');
  const device = need('PEERCAM_DEVICE');
  const nvr = need('PEERCAM_NVR');
  const spanStart = Number(need('PEERCAM_SPAN_START_MS'));
  const exportDir = need('PEERCAM_EXPORT_DIR');
  const shotDir = process.env.PEERCAM_WEB_SHOTS;
  const browser = await launch();
  result.browser = browser.version();
  try {
    const { page: p, problems } = await newUser(browser);
    await login(p, base, need('PEERCAM_WEB_USER'), need('PEERCAM_WEB_PASSWORD'));

    // --- The device list: a recent picture of the camera.
    const card = p.locator(`li[data-device-id="${device}"]`);
    const img = card.locator('.thumb img');
    await img.waitFor({ timeout: 20000 });
    await p.waitForFunction((id) => {
      const i = document.querySelector(`li[data-device-id="${id}"] .thumb img`);
      return i && i.complete && i.naturalWidth > 0;
    }, device, { timeout: 10000 });
    result.thumbnail = await img.evaluate((i) => ({ w: i.naturalWidth, h: i.naturalHeight, src: i.src.slice(0, 5) }));
    expect(result.thumbnail.src === 'blob:', 'the thumbnail is shown from a blob URL');
    result.nvr_thumbnail = await p.locator(`li[data-device-id="${nvr}"] .thumb`).count();
    expect(result.nvr_thumbnail === 0, 'the recorder has no picture of its own');
    // Each kind of device offers what it can do: the recorder has no live view, playback,
    // settings or sharing of its own; the camera has all four for its owner.
    const links = async (id) => p.locator(`li[data-device-id="${id}"] .actions a`).allTextContents();
    result.nvr_actions = await links(nvr);
    result.camera_actions = await links(device);
    expect(result.nvr_actions.length === 0, `no camera actions on the recorder's card, got ${result.nvr_actions}`);
    expect(['Live view', 'Playback', 'Settings', 'Sharing'].every((a) => result.camera_actions.includes(a)),
      `the camera's card offers its pages, got ${result.camera_actions}`);
    step(result, 'thumbnail');

    // --- The Playback tab: the NVR is chosen, the day's timeline is drawn.
    await card.getByRole('link', { name: 'Playback' }).click();
    await p.getByRole('heading', { level: 1, name: /: playback$/ }).waitFor();
    await p.getByText(/recorded stretch/).waitFor({ timeout: 15000 });
    result.recorder = await p.locator('#pb-recorder').inputValue();
    expect(result.recorder === nvr, `the NVR is the recorder chosen (${result.recorder})`);
    result.summary = await p.locator('#pb-summary').textContent();
    await p.getByLabel('Timeline span').selectOption({ label: '10 minutes' });
    step(result, 'timeline');

    // --- Click on the timeline 2 s into the recording: it plays from there.
    const at = spanStart + 2000;
    const tl = await p.evaluate(() => window.peercam.playback.timeline);
    const box = await p.locator('#timeline').boundingBox();
    const x = ((at - tl.viewFrom) / (tl.viewTo - tl.viewFrom)) * box.width;
    await p.locator('#timeline').click({ position: { x, y: box.height / 2 } });
    await p.waitForFunction(() => window.peercam.playback.state === 'playing' && window.peercam.playback.status, null, { timeout: 20000 });
    await sleep(1000);
    const pb = () => p.evaluate(() => ({ ...window.peercam.playback, timeline: { ...window.peercam.playback.timeline } }));
    const s0 = await pb();
    result.seek_error_ms = s0.status.pos_ms - at - 1000;
    expect(Math.abs(s0.status.pos_ms - at) < 3000, `played from the clicked moment (${s0.status.pos_ms - at} ms off after 1 s)`);
    const a = await frameSignature(p);
    await sleep(1500);
    const b = await frameSignature(p);
    const s1 = await pb();
    expect(a && b, 'the video has frames');
    result.size = `${b.width}x${b.height}`;
    result.frames_1x = s1.frames - s0.frames;
    result.contrast = +b.sd.toFixed(1);
    expect(b.t > a.t && result.frames_1x > 20, `the video advances (${result.frames_1x} frames in 1.5 s)`);
    expect(b.sd > 5, `the frame is not blank (grey std dev ${b.sd})`);
    result.rate_1x = +((s1.status.pos_ms - s0.status.pos_ms) / (s1.statusAt - s0.statusAt)).toFixed(2);
    expect(Math.abs(s1.timeline.cursor - s1.status.pos_ms) < 1, 'the cursor follows the position');
    step(result, 'plays');

    /** Position moved per wall-clock ms over `ms`, from the recorder's statuses. */
    const rate = async (ms) => {
      await sleep(600);
      const x0 = await pb();
      await sleep(ms);
      const x1 = await pb();
      return { rate: +((x1.status.pos_ms - x0.status.pos_ms) / (x1.statusAt - x0.statusAt)).toFixed(2), scale: x1.status.scale, frames: x1.frames - x0.frames, cursor: x1.timeline.cursor - x1.status.pos_ms };
    };
    await p.getByRole('button', { name: '4×', exact: true }).click();
    result.fast = await rate(2000);
    expect(result.fast.scale === '4' && result.fast.rate >= 3 && result.fast.rate <= 5, `4x moves about 4 times wall time: ${JSON.stringify(result.fast)}`);
    expect(result.fast.frames > 0, 'frames come at 4x');
    step(result, '4x');
    await p.getByRole('button', { name: /Reverse/ }).click();
    result.reverse = await rate(2000);
    expect(result.reverse.scale === '-4' && result.reverse.rate <= -3 && result.reverse.rate >= -5, `reverse moves backwards about 4x: ${JSON.stringify(result.reverse)}`);
    step(result, 'reverse');

    // --- Pause, then frame steps: exactly one frame each, 40 ms apart.
    await p.getByRole('button', { name: 'Pause', exact: true }).click();
    await p.waitForFunction(() => window.peercam.playback.status?.state === 'paused', null, { timeout: 5000 });
    await sleep(800);
    const q0 = await pb();
    await sleep(800);
    const q1 = await pb();
    expect(q1.frames === q0.frames, `no frames while paused (${q1.frames - q0.frames})`);
    const still = await frameSignature(p);
    const stepTo = async (name, want) => {
      const before = await pb();
      await p.getByRole('button', { name }).click();
      await p.waitForFunction((w) => window.peercam.playback.status?.pos_ms === w, want, { timeout: 5000 });
      await sleep(700);
      const after = await pb();
      return { pos_delta: after.status.pos_ms - before.status.pos_ms, frames: after.frames - before.frames };
    };
    const p0 = q1.status.pos_ms;
    result.step_forward = await stepTo('Frame forward', p0 + 40);
    const stepped = await frameSignature(p);
    result.step_back = await stepTo('Frame back', p0);
    const back = await frameSignature(p);
    const diff = (u, v) => +(u.grey.reduce((s, g, i) => s + Math.abs(g - v.grey[i]), 0) / u.grey.length).toFixed(2);
    result.step_picture_diff = { forward: diff(still, stepped), back: diff(stepped, back) };
    for (const s of [result.step_forward, result.step_back]) {
      expect(s.frames === 1, `one frame per step: ${JSON.stringify(result.step_forward)} ${JSON.stringify(result.step_back)}`);
    }
    expect(result.step_forward.pos_delta === 40 && result.step_back.pos_delta === -40, 'steps of one frame (40 ms at 25 fps)');
    step(result, 'steps');

    // --- Keyboard: arrow keys move the cursor (1 s at this zoom), the seek keeps the pause.
    await p.locator('#timeline').focus();
    const v0 = Number(await p.locator('#timeline').getAttribute('aria-valuenow'));
    await p.keyboard.press('ArrowLeft');
    await p.keyboard.press('ArrowLeft');
    const v1 = Number(await p.locator('#timeline').getAttribute('aria-valuenow'));
    result.keyboard_moved_s = v1 - v0;
    expect(v1 - v0 === -2, `two left arrows move the cursor 2 s back (${v1 - v0})`);
    // The recorder starts a seek at the key frame at or before the moment asked.
    const k0 = Date.now();
    let ks;
    do {
      await sleep(200);
      ks = (await pb()).status;
    } while (!(ks.pos_ms <= p0 - 2000 + 200 && ks.pos_ms > p0 - 6000) && Date.now() - k0 < 5000);
    result.keyboard_seek = { pos_delta: ks.pos_ms - p0, state: ks.state };
    expect(ks.pos_ms <= p0 - 2000 + 200 && ks.pos_ms > p0 - 6000, `the arrow keys seek 2 s back: ${JSON.stringify(ks)} from ${p0}`);
    step(result, 'keyboard');

    // --- Export 4 s as an MP4 through the data channel.
    const from = Math.ceil((spanStart + 1000) / 1000) * 1000;
    await p.getByLabel('From', { exact: true }).fill(hhmmss(from));
    await p.getByLabel('To', { exact: true }).fill(hhmmss(from + 4000));
    const [dl] = await Promise.all([
      p.waitForEvent('download', { timeout: 30000 }),
      p.getByRole('button', { name: 'Export MP4' }).click(),
    ]);
    const file = join(exportDir, dl.suggestedFilename());
    await dl.saveAs(file);
    await p.getByText(/^Saved /).waitFor();
    const ex = (await pb()).exports[0];
    result.export = { name: dl.suggestedFilename(), bytes: statSync(file).size, announced_frames: ex.frames, ms: ex.ms, path: file };
    expect(result.export.bytes === ex.bytes, 'the file has the bytes announced');
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
      '-show_entries', 'stream=codec_name,nb_read_frames,width,height', '-of', 'json', file]).toString());
    const st = probe.streams[0];
    result.export.codec = st.codec_name;
    result.export.probed_frames = Number(st.nb_read_frames);
    result.export.size = `${st.width}x${st.height}`;
    expect(st.codec_name === 'h264', `H.264 (${st.codec_name})`);
    expect(result.export.probed_frames === ex.frames, `ffprobe reads the frames announced (${result.export.probed_frames} vs ${ex.frames})`);
    // 4 s at 25 fps, from the key frame at or before the start (GOP 2 s): 100 to 150.
    expect(ex.frames >= 95 && ex.frames <= 155, `4 s of frames from the key frame before (${ex.frames})`);
    step(result, 'export');

    // --- Opened at a moment (the Alarms page's "Play from 5 s before"): the day of it, the
    // cursor there, playing from there.
    const atMs = spanStart + 3000;
    await p.evaluate((hash) => { location.hash = hash; }, `#/device/${device}/recordings?at=${atMs}`);
    const opened = await p.waitForFunction((want) => {
      const hk = window.peercam.playback;
      const pos = hk?.status?.pos_ms;
      return hk?.state === 'playing' && pos >= want - 2500 && pos < want + 8000 && hk.frames > 0 && pos;
    }, atMs, { timeout: 15000 });
    result.opened_at = { at: atMs, pos_ms: await opened.jsonValue(), day: await p.locator('#pb-day').inputValue() };
    step(result, 'opened at a moment');

    result.screenshots = await shots(p, shotDir, '10-playback', { scrollTo: '.pb-layout' });
    result.problems = problems;
    expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
