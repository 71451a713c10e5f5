// Helpers of the browser tests: Debian's Chromium driven by playwright-core (no browser
// download), screenshots at desktop and phone sizes, one JSON line of results.

import { mkdirSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';

export const CHROMIUM = process.env.PEERCAM_CHROMIUM || '/usr/bin/chromium';

/** The flags Chromium needs here (root, no GPU, closed network), see docs/web-client.md. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  // WebRTC on loopback: let ICE use 127.0.0.1.
  '--allow-loopback-in-peer-connection',
  // Play live views with sound without a user gesture.
  '--autoplay-policy=no-user-gesture-required',
];

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** A required environment variable. */
export function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name} (see docs/web-client.md)`);
  return v;
}

/**
 * Starts Chromium. playwright-core gives every launch a fresh temporary profile of its own
 * (`--user-data-dir` in a new temporary directory, removed at close). With `fakeMicrophone`
 * (the path of a WAV file), getUserMedia is granted without asking and the microphone plays
 * that file in a loop.
 */
export async function launch({ fakeMicrophone } = {}) {
  const args = [...CHROMIUM_ARGS];
  if (fakeMicrophone) {
    args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-audio-capture=${fakeMicrophone}`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/** A browser context for one user: its own storage, the test CA's certificate accepted. */
export async function newUser(browser, viewport = DESKTOP) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport,
    acceptDownloads: true,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) problems.push(`CSP: ${t}`);
  });
  return { context, page, problems };
}

/**
 * Screenshots the page at desktop and phone sizes into `dir` as NAME-desktop.png,
 * NAME-phone.png; from the top, or from the element `scrollTo` (a selector) when given.
 */
export async function shots(page, dir, name, { scrollTo } = {}) {
  if (!dir) return [];
  mkdirSync(dir, { recursive: true });
  const before = page.viewportSize();
  // Without a passing notification over the content.
  await page.evaluate(() => document.querySelector('#toast')?.classList.remove('show'));
  const out = [];
  for (const [label, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    await page.evaluate((sel) => {
      const el = sel && document.querySelector(sel);
      window.scrollTo(0, el ? Math.max(0, el.getBoundingClientRect().top + window.scrollY - 8) : 0);
    }, scrollTo ?? null);
    const path = join(dir, `${name}-${label}.png`);
    await page.screenshot({ path, fullPage: false, animations: 'disabled', caret: 'hide' });
    out.push(path);
  }
  if (before) await page.setViewportSize(before);
  return out;
}

/** The newest 6-digit code the SMS outbox holds for `phone` (waits up to `ms`). */
export async function smsCode(outbox, phone, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (existsSync(outbox)) {
      const files = readdirSync(outbox).filter((f) => f.endsWith('.json')).sort().reverse();
      for (const f of files) {
        try {
          const msg = JSON.parse(readFileSync(join(outbox, f), 'utf8'));
          const code = msg.to === phone && msg.text.split(/\D+/).find((w) => w.length === 6);
          if (code) return code;
        } catch {
          // A message being written; the next loop reads it.
        }
      }
    }
    if (Date.now() > deadline) throw new Error(`no SMS code for ${phone} in ${outbox}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `page.goto(url)`, again when Chromium aborts the navigation with ERR_NETWORK_CHANGED: it
 * does so when the network configuration it watches changes, which happens while the NAT lab
 * builds or removes namespaces and links beside the browser's.
 */
export async function open(page, url) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url);
    } catch (e) {
      if (attempt >= 5 || !String(e?.message).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 300 * attempt));
    }
  }
}

/** Logs in through the login form and waits for the home page. */
export async function login(page, base, user, password, home = 'Devices') {
  const failed = [];
  const pending = new Set();
  const onRequest = (r) => pending.add(r);
  const onDone = (r) => pending.delete(r);
  const onFailed = (r) => {
    pending.delete(r);
    failed.push(`${r.url()}: ${r.failure()?.errorText ?? '?'}`);
  };
  page.on('request', onRequest);
  page.on('requestfinished', onDone);
  page.on('requestfailed', onFailed);
  try {
    for (let attempt = 1; ; attempt++) {
      failed.length = 0;
      await open(page, `${base}/#/login`);
      try {
        await page.getByLabel('Phone number or user name').waitFor({ timeout: 15000 });
        break;
      } catch (e) {
        // A module of the app aborted with ERR_NETWORK_CHANGED (see `open`) leaves the page
        // blank: load it again. Any other failure is reported with the failed requests.
        if (attempt < 3 && failed.some((f) => f.includes('ERR_NETWORK_CHANGED'))) continue;
        const waiting = [...pending].map((r) => r.url()).join('; ') || 'none';
        throw new Error(`${e.message}\nfailed requests: ${failed.join('; ') || 'none'}\nunanswered: ${waiting}`);
      }
    }
  } finally {
    page.off('request', onRequest);
    page.off('requestfinished', onDone);
    page.off('requestfailed', onFailed);
  }
  await page.getByLabel('Phone number or user name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: home }).waitFor();
}

/** Runs `body(result)`; prints `result` as one JSON line; exits 1 if it threw. */
export async function run(body) {
  const result = { ok: false, steps: [] };
  const started = Date.now();
  let code = 0;
  try {
    await body(result);
    result.ok = true;
  } catch (e) {
    result.error = String(e?.stack ?? e);
    code = 1;
  }
  result.ms = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

/** Records a step as done (the JSON shows how far a failing run got). */
export function step(result, name, extra) {
  result.steps.push(extra === undefined ? name : { [name]: extra });
}

/** Throws unless `cond`. */
export function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

/** A 32x18 grey-level signature of the video's current frame, and its contrast (std dev). */
export async function frameSignature(page) {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    if (!v || !v.videoWidth) return null;
    const c = document.createElement('canvas');
    c.width = 32;
    c.height = 18;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, c.width, c.height);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    const grey = [];
    for (let i = 0; i < px.length; i += 4) grey.push(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
    const mean = grey.reduce((a, b) => a + b, 0) / grey.length;
    const sd = Math.sqrt(grey.reduce((a, b) => a + (b - mean) ** 2, 0) / grey.length);
    return { grey, sd, width: v.videoWidth, height: v.videoHeight, t: v.currentTime };
  });
}

const meanAbsDiff = (a, b) => a.grey.reduce((s, x, i) => s + Math.abs(x - b.grey[i]), 0) / a.grey.length;

/**
 * On a device's live page: Play, then check what issue 7 asks of the live view: it connects
 * (path shown), the first frame is painted, the video advances and is not blank, PTZ visibly
 * moves the picture, snapshot gives a PNG, local recording gives a WebM, sound toggles.
 * Leaves the view stopped (which reports the session).
 */
export async function checkPlaying(page, { shot } = {}) {
  const out = {};
  await page.getByRole('button', { name: 'Play', exact: true }).click();
  await page.locator('#path-badge[data-path]').waitFor({ timeout: 20000 });
  await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
  const lp = await page.evaluate(() => window.peercam.lastPlay);
  out.path = lp.path;
  out.connect_ms = Math.round(lp.connectedAt - lp.clickedAt);
  out.first_frame_ms = Math.round(lp.firstFrameAt - lp.clickedAt);
  const a = await frameSignature(page);
  await page.waitForTimeout(1000);
  const b = await frameSignature(page);
  expect(a && b, 'the video has frames');
  out.size = `${b.width}x${b.height}`;
  out.advanced_s = +(b.t - a.t).toFixed(2);
  expect(b.t > a.t, `the video advances (${a.t} -> ${b.t})`);
  out.contrast = +b.sd.toFixed(1);
  expect(b.sd > 5, `the frame is not blank (grey std dev ${b.sd})`);
  if (shot) await shot(page, '05-live');
  if (await page.getByRole('button', { name: 'Pan right' }).count()) {
    const before = await frameSignature(page);
    const btn = page.getByRole('button', { name: 'Pan right' });
    await btn.hover();
    await page.mouse.down();
    await page.waitForTimeout(1200);
    await page.mouse.up();
    await page.waitForTimeout(500);
    const after = await frameSignature(page);
    out.ptz_picture_diff = +meanAbsDiff(before, after).toFixed(1);
    expect(out.ptz_picture_diff > 3, `PTZ moves the picture (mean grey difference ${out.ptz_picture_diff})`);
  }
  const [snap] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Snapshot' }).click()]);
  const snapBytes = readFileSync(await snap.path());
  expect(snap.suggestedFilename().endsWith('.png') && snapBytes.subarray(1, 4).toString() === 'PNG', 'the snapshot is a PNG file');
  out.snapshot_bytes = snapBytes.length;
  await page.getByRole('button', { name: 'Record', exact: true }).click();
  await page.waitForTimeout(2000);
  const [rec] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Stop recording' }).click()]);
  const recBytes = readFileSync(await rec.path());
  expect(rec.suggestedFilename().endsWith('.webm') && recBytes.readUInt32BE(0) === 0x1a45dfa3, 'the recording is a WebM file');
  out.recording_bytes = recBytes.length;
  await page.getByRole('button', { name: 'Sound off' }).click();
  out.sound_on = await page.evaluate(() => !document.querySelector('video').muted);
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await page.getByText('Stopped.', { exact: false }).waitFor();
  return out;
}

/** p-th percentile (0..100) of numbers, nearest rank. */
export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** RFC 6238: HMAC-SHA1 over the 30-second step, dynamic truncation, 6 digits. */
export function totp(secretB32, t) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretB32) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from((bits.match(/.{8}/g) ?? []).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const o = mac[19] & 0x0f;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
