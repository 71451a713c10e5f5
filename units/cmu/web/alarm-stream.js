// The live alarm stream (H.626.4 8.8, 6.1.9), followed once for the whole client while a
// user is logged in: GET /api/v1/alarms/stream (server-sent events), reconnected with
// back-off when it drops, closed at logout. Every new alarm shows a toast on whatever page
// is open ("Motion · Front door", a link to #/alarms/{id}); pages that show alarms (the
// Alarms page) subscribe to the same connection instead of opening a second one.

import { api, authHeaders, h } from './app.js';

export const KIND_LABEL = {
  motion: 'Motion', input: 'Alarm input', video_loss: 'Video lost', tamper: 'Tampering', onvif: 'Camera event',
  manual: 'Manual', login: 'Signed in', logout: 'Signed out', storage_full: 'Storage full',
  camera_offline: 'Camera offline', camera_online: 'Camera online', recorder_offline: 'Recorder offline',
  upgrade_result: 'Upgrade',
};

/** How long a toast stays, ms. */
const TOAST_MS = 10_000;
/** Most toasts shown at once (the oldest goes first). */
const TOAST_MAX = 3;
/** Reconnection delays: doubling from the first to the last, ms. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

const listeners = new Set();
/** device id -> name, for the toasts; refreshed when an unknown camera raises an alarm. */
let names = new Map();
let ctl = null;
/** What tests and the curious can see: `window.peercam.alarmStream`. */
const state = { running: false, connected: false, connections: 0, events: 0 };

/** Calls `fn(event)` for every event of the stream (`{event: 'alarm'|'snapshot'|'reset', alarm}`); returns the unsubscribe. */
export function onAlarmEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Starts following the stream (once; calling it again changes nothing). */
export function startAlarmStream() {
  if (ctl) return;
  ctl = new AbortController();
  state.running = true;
  window.peercam.alarmStream = state;
  run(ctl.signal);
}

/** Stops following it (logout), and removes the toasts. */
export function stopAlarmStream() {
  ctl?.abort();
  ctl = null;
  state.running = false;
  state.connected = false;
  names = new Map();
  document.querySelector('#alarm-toasts')?.replaceChildren();
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

async function run(signal) {
  let delay = RETRY_FIRST_MS;
  refreshNames();
  while (!signal.aborted) {
    const opened = Date.now();
    try {
      await follow(signal);
    } catch {
      // Network gone, or aborted: retried below unless aborted.
    }
    state.connected = false;
    if (signal.aborted) return;
    // A connection that lasted a while was fine: start the back-off again from the start.
    if (Date.now() - opened > RETRY_MAX_MS) delay = RETRY_FIRST_MS;
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

/** Reads the server-sent events until the stream ends or `signal` aborts. */
async function follow(signal) {
  const resp = await fetch('/api/v1/alarms/stream', { headers: authHeaders(), signal, cache: 'no-store' });
  if (resp.status === 401) {
    // The session ended; the next API call sends the user to the login page.
    api('GET', '/me').catch(() => {});
    stopAlarmStream();
    return;
  }
  if (!resp.ok || !resp.body) return;
  state.connected = true;
  state.connections++;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      let ev = null;
      try {
        ev = data ? JSON.parse(data) : null;
      } catch {
        ev = null;
      }
      // Keep-alive comments and lag notices carry no alarm.
      if (ev?.alarm) dispatch(ev);
    }
  }
}

function dispatch(ev) {
  state.events++;
  if (ev.event === 'alarm') showToast(ev.alarm);
  for (const fn of listeners) {
    try {
      fn(ev);
    } catch (e) {
      console.warn('alarm listener failed', e);
    }
  }
}

async function refreshNames() {
  try {
    const devices = await api('GET', '/devices');
    names = new Map(devices.map((d) => [d.id, d.name || d.id]));
  } catch {
    // Shown with the camera's id instead.
  }
}

/** "Motion · Front door". */
export function alarmTitle(a, nameOf = (id) => names.get(id)) {
  const kind = KIND_LABEL[a.kind] ?? a.kind;
  return a.camera ? `${kind} · ${nameOf(a.camera) ?? a.camera}` : kind;
}

function toastBox() {
  let box = document.querySelector('#alarm-toasts');
  if (!box) {
    box = h('div', { id: 'alarm-toasts', class: 'alarm-toasts', role: 'region', 'aria-label': 'New alarms', 'aria-live': 'polite' });
    document.body.append(box);
  }
  return box;
}

async function showToast(a) {
  if (a.camera && !names.has(a.camera)) await refreshNames();
  // Logged out meanwhile.
  if (!ctl) return;
  const box = toastBox();
  box.querySelector(`[data-alarm-id="${a.id}"]`)?.remove();
  const close = h('button', { type: 'button', class: 'link close', 'aria-label': 'Dismiss' }, '×');
  const item = h('div', { class: 'alarm-toast', dataset: { alarmId: String(a.id), kind: a.kind } },
    h('a', { href: `#/alarms/${a.id}` },
      h('strong', null, alarmTitle(a)), ' ',
      h('span', { class: 'hint' }, new Date(a.at_ms).toLocaleTimeString())),
    close);
  const remove = () => item.remove();
  close.addEventListener('click', remove);
  item.querySelector('a').addEventListener('click', () => setTimeout(remove, 0));
  box.prepend(item);
  while (box.children.length > TOAST_MAX) box.lastElementChild.remove();
  setTimeout(remove, TOAST_MS);
}
