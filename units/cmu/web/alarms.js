// Alarms (H.626.4 8.8, 6.1.9): the caller's alarms, newest first, filtered by camera, kind,
// state and dates (kept in the page address, so they survive a reload), older pages on
// demand ("Load more", the `before` cursor), live updates from the client's one alarm stream
// (alarm-stream.js), snapshots, reset (which reaches the camera), "Play from 5 s before"
// into the camera's recordings; #/alarms/{id} (the link of an SMS or a push message) shows
// that alarm. And Web Push on this device (6.1.9): subscribe with the CMU's VAPID key, post
// the subscription.

import { KIND_LABEL, onAlarmEvent } from './alarm-stream.js';
import { api, apiBlob, h, messageOf, toast } from './app.js';

export { KIND_LABEL };

/** Alarms per page. */
const PAGE = 50;
/** How far before the alarm "Play from 5 s before" starts, ms. */
const PLAY_BEFORE_MS = 5000;
/** The kinds a camera raises (the others are the platform's own, 6.1.9). */
const DEVICE_KINDS = ['motion', 'input', 'video_loss', 'tamper', 'onvif', 'manual'];

const pad2 = (n) => String(n).padStart(2, '0');
const isoDay = (x) => `${x.getFullYear()}-${pad2(x.getMonth() + 1)}-${pad2(x.getDate())}`;
/** `YYYY-MM-DD` (local) -> Unix ms of that day's start, `plusDays` later. */
function dayMs(v, plusDays = 0) {
  const [y, m, d] = v.split('-').map(Number);
  return new Date(y, m - 1, d + plusDays).getTime();
}

/** The filters in the address: `#/alarms?camera=&kind=&state=&from=YYYY-MM-DD&to=YYYY-MM-DD`. */
function filtersOf(hash) {
  const q = new URLSearchParams(hash.split('?')[1] ?? '');
  const f = {};
  for (const k of ['camera', 'kind', 'state', 'from', 'to']) {
    const v = q.get(k);
    if (v) f[k] = v;
  }
  return f;
}

/** The API query of the filters (dates as Unix ms: from the first day's start to the last day's end). */
function apiQuery(f, before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (f.camera) q.set('camera', f.camera);
  if (f.kind) q.set('kind', f.kind);
  if (f.state) q.set('state', f.state);
  if (f.from) q.set('from', String(dayMs(f.from)));
  if (f.to) q.set('to', String(dayMs(f.to, 1) - 1));
  if (before != null) q.set('before', String(before));
  return q;
}

/** Whether a live alarm belongs in the list the filters show. */
function matches(f, a) {
  if (f.camera && a.camera !== f.camera) return false;
  if (f.kind && a.kind !== f.kind) return false;
  if (f.state && a.state !== f.state) return false;
  if (f.from && a.at_ms < dayMs(f.from)) return false;
  if (f.to && a.at_ms >= dayMs(f.to, 1)) return false;
  return true;
}

function alarmItem(a, devices) {
  const d = a.camera ? devices.get(a.camera) : null;
  const state = h('span', { class: `badge ${a.state}` }, a.state === 'active' ? 'Active' : 'Reset');
  const actions = h('div', { class: 'actions' });
  const li = h(
    'li',
    { class: 'alarm', id: `alarm-${a.id}`, dataset: { state: a.state, kind: a.kind, camera: a.camera ?? '' } },
    h('strong', {}, KIND_LABEL[a.kind] ?? a.kind),
    ' ',
    state,
    h('div', { class: 'hint' }, new Date(a.at_ms).toLocaleString(), a.camera ? ` · ${d?.name || a.camera}` : '', a.detail ? ` · ${a.detail}` : ''),
    actions,
  );
  if (d && d.kind === 'pu' && d.scopes?.includes('playback')) {
    const at = Math.max(0, a.at_ms - PLAY_BEFORE_MS);
    actions.append(h('a', {
      class: 'button play-from',
      href: `#/device/${encodeURIComponent(a.camera)}/recordings?at=${at}`,
      'aria-label': `Play the recording of ${d.name || a.camera} from 5 seconds before this alarm`,
    }, 'Play from 5 s before'));
  }
  if (a.snapshot) {
    actions.append(h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const blob = await apiBlob(`/alarms/${a.id}/snapshot`);
          li.append(h('img', { class: 'alarm-snapshot', alt: 'Snapshot taken with the alarm', src: URL.createObjectURL(blob) }));
        } catch (e) {
          ev.target.disabled = false;
          toast(messageOf(e));
        }
      },
    }, 'Show snapshot'));
  }
  if (a.state === 'active') {
    actions.append(h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const after = await api('POST', `/alarms/${a.id}/reset`);
          const fresh = alarmItem(after, devices);
          fresh.className = li.className;
          li.replaceWith(fresh);
        } catch (e) {
          ev.target.disabled = false;
          toast(messageOf(e));
        }
      },
    }, 'Reset'));
  }
  return li;
}

/** base64url (the VAPID key) to bytes for `applicationServerKey`. */
function fromB64url(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** "Enable notifications on this device" / "Disable": this browser's push subscription. */
function pushControl() {
  const status = h('p', { class: 'hint', id: 'push-status', role: 'status' });
  const box = h('div', { class: 'push-control', id: 'push-control' });
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
    status.textContent = 'This browser cannot show alarm notifications.';
    box.append(status);
    return box;
  }
  const registration = () => navigator.serviceWorker.getRegistration('/');
  const enable = h('button', { type: 'button', id: 'push-enable' }, 'Enable notifications on this device');
  const disable = h('button', { type: 'button', id: 'push-disable', hidden: true }, 'Disable notifications on this device');
  const show = (on, text) => {
    enable.hidden = on;
    disable.hidden = !on;
    status.textContent = text;
  };
  enable.addEventListener('click', async () => {
    enable.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== 'granted') {
        show(false, 'Notifications are blocked for this site: allow them in the browser settings.');
        return;
      }
      const reg = await registration();
      if (!reg) throw new Error('the offline shell is not installed yet; reload the page');
      const { key } = await api('GET', '/push/vapid-public-key');
      // A subscription made with another key cannot be reused.
      await (await reg.pushManager.getSubscription())?.unsubscribe();
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromB64url(key) });
      await api('POST', '/me/push-subscriptions', sub.toJSON());
      show(true, 'Alarms are shown on this device.');
    } catch (e) {
      show(false, `Could not enable notifications: ${e.message}`);
    } finally {
      enable.disabled = false;
    }
  });
  disable.addEventListener('click', async () => {
    disable.disabled = true;
    try {
      const sub = await (await registration())?.pushManager.getSubscription();
      if (sub) {
        await api('DELETE', '/me/push-subscriptions', { endpoint: sub.endpoint }).catch((e) => {
          if (e.status !== 404) throw e;
        });
        await sub.unsubscribe();
      }
      show(false, 'Alarms are no longer shown on this device.');
    } catch (e) {
      status.textContent = `Could not disable notifications: ${e.message}`;
    } finally {
      disable.disabled = false;
    }
  });
  registration()
    .then((reg) => reg?.pushManager.getSubscription())
    .then((sub) => show(!!sub, sub ? 'Alarms are shown on this device.' : ''))
    .catch(() => {});
  box.append(enable, disable, status);
  return box;
}

/** The filter form, filled from `f`; `onChange(filters)` when the user applies it. */
function filterForm(f, devices, onChange) {
  const opt = (v, label) => h('option', { value: v }, label);
  const camera = h('select', { name: 'camera', id: 'af-camera' }, opt('', 'All cameras'),
    [...devices.values()].filter((d) => d.kind === 'pu').map((d) => opt(d.id, d.name || d.id)));
  const kind = h('select', { name: 'kind', id: 'af-kind' }, opt('', 'All kinds'),
    Object.entries(KIND_LABEL).map(([k, label]) => opt(k, label)));
  const state = h('select', { name: 'state', id: 'af-state' }, opt('', 'Active and reset'), opt('active', 'Active'), opt('reset', 'Reset'));
  const from = h('input', { type: 'date', name: 'from', id: 'af-from' });
  const to = h('input', { type: 'date', name: 'to', id: 'af-to' });
  camera.value = f.camera ?? '';
  kind.value = f.kind ?? '';
  state.value = f.state ?? '';
  from.value = f.from ?? '';
  to.value = f.to ?? '';
  const lab = (input, text) => h('div', { class: 'field' }, h('label', { for: input.id }, text), input);
  const read = () => {
    const out = {};
    for (const [k, el] of Object.entries({ camera, kind, state, from, to })) if (el.value) out[k] = el.value;
    return out;
  };
  const box = h('form', { class: 'filters', 'aria-label': 'Filter alarms', role: 'search' },
    lab(camera, 'Camera'), lab(kind, 'Kind'), lab(state, 'State'), lab(from, 'From'), lab(to, 'To'),
    h('button', { type: 'reset' }, 'Clear filters'));
  box.addEventListener('change', () => onChange(read()));
  box.addEventListener('submit', (ev) => { ev.preventDefault(); onChange(read()); });
  box.addEventListener('reset', () => setTimeout(() => onChange(read()), 0));
  return box;
}

/** The alarms page (`#/alarms`, `#/alarms?filters`, `#/alarms/{id}`); `onLeave` registers cleanups. */
export async function alarmsView(main, onLeave) {
  const hash = location.hash;
  const focusId = /^#\/alarms\/(\d+)/.exec(hash)?.[1] ?? null;
  let filters = focusId ? {} : filtersOf(hash);
  const list = h('ul', { class: 'alarms', id: 'alarm-list', 'aria-live': 'polite', 'aria-label': 'Alarms, newest first' });
  const pinned = h('div', { id: 'alarm-pinned' });
  const summary = h('p', { class: 'muted', id: 'alarm-summary', role: 'status' });
  const more = h('button', { type: 'button', id: 'alarm-more', hidden: true }, 'Load more');
  main.append(
    h('div', { class: 'heading' }, h('h1', {}, 'Alarms'),
      h('a', { class: 'button', href: '#/alarms/settings' }, 'Messages and notifications')),
    pushControl(),
  );
  const devices = new Map((await api('GET', '/devices')).map((d) => [d.id, d]));
  let next = null;
  let generation = 0;

  const load = async (append) => {
    const mine = append ? generation : ++generation;
    more.disabled = true;
    try {
      const page = await api('GET', `/alarms?${apiQuery(filters, append ? next : null)}`);
      if (mine !== generation) return;
      if (!append) list.replaceChildren();
      for (const a of page.alarms) {
        if (!list.querySelector(`#alarm-${a.id}`)) list.append(alarmItem(a, devices));
      }
      next = page.next ?? null;
      more.hidden = next == null;
      const n = list.querySelectorAll('li.alarm').length;
      summary.textContent = n
        ? `${n} ${n === 1 ? 'alarm' : 'alarms'} shown${next != null ? '; older ones with “Load more”' : ''}.`
        : Object.keys(filters).length ? 'No alarms match these filters.' : 'No alarms yet.';
    } catch (e) {
      summary.textContent = messageOf(e);
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => load(true));

  const form = filterForm(filters, devices, (f) => {
    filters = f;
    const q = new URLSearchParams(f).toString();
    // The address keeps the filters (a reload shows the same list) without a new page.
    history.replaceState(null, '', `#/alarms${q ? `?${q}` : ''}`);
    pinned.replaceChildren();
    load(false);
  });
  main.append(form, summary, pinned, list, more);
  await load(false);

  onLeave(onAlarmEvent((ev) => {
    const a = ev.alarm;
    const old = main.querySelector(`#alarm-${a.id}`);
    if (old) {
      const item = alarmItem(a, devices);
      item.className = old.className;
      old.replaceWith(item);
    } else if (ev.event === 'alarm' && matches(filters, a)) {
      list.prepend(alarmItem(a, devices));
    }
  }));

  if (focusId) {
    let item = list.querySelector(`#alarm-${focusId}`);
    if (!item) {
      try {
        item = alarmItem(await api('GET', `/alarms/${focusId}`), devices);
        pinned.append(h('h2', null, 'The alarm you opened'), h('ul', { class: 'alarms' }, item));
      } catch (e) {
        pinned.append(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
      }
    }
    if (item) {
      item.classList.add('highlight');
      item.setAttribute('aria-current', 'true');
      item.setAttribute('tabindex', '-1');
      item.scrollIntoView({ block: 'center' });
      requestAnimationFrame(() => item.focus({ preventScroll: true }));
    }
  }
}
