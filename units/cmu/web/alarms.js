// Alarms (H.626.4 8.8, 6.1.9): the caller's alarms, newest first, with live updates from
// GET /api/v1/alarms/stream, their snapshots, and reset (which reaches the camera); and
// Web Push on this device (6.1.9): subscribe with the CMU's VAPID key, post the subscription.

import { api, apiBlob, authHeaders, h } from './app.js';

const KIND_LABEL = {
  motion: 'Motion', input: 'Alarm input', video_loss: 'Video lost', tamper: 'Tampering', onvif: 'Camera event',
  manual: 'Manual', login: 'Signed in', logout: 'Signed out', storage_full: 'Storage full',
  camera_offline: 'Camera offline', camera_online: 'Camera online', recorder_offline: 'Recorder offline',
  upgrade_result: 'Upgrade',
};

function alarmItem(a, names) {
  const state = h('span', { class: `badge ${a.state}` }, a.state === 'active' ? 'Active' : 'Reset');
  const actions = h('div', { class: 'actions' });
  const li = h(
    'li',
    { class: 'alarm', id: `alarm-${a.id}`, dataset: { state: a.state, kind: a.kind } },
    h('strong', {}, KIND_LABEL[a.kind] ?? a.kind),
    ' ',
    state,
    h('div', { class: 'hint' }, new Date(a.at_ms).toLocaleString(), a.camera ? ` · ${names.get(a.camera) ?? a.camera}` : '', a.detail ? ` · ${a.detail}` : ''),
    actions,
  );
  if (a.snapshot) {
    actions.append(h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.target.disabled = true;
        const blob = await apiBlob(`/alarms/${a.id}/snapshot`);
        li.append(h('img', { class: 'alarm-snapshot', alt: 'Snapshot taken with the alarm', src: URL.createObjectURL(blob) }));
      },
    }, 'Show snapshot'));
  }
  if (a.state === 'active') {
    actions.append(h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.target.disabled = true;
        const after = await api('POST', `/alarms/${a.id}/reset`);
        li.replaceWith(alarmItem(after, names));
      },
    }, 'Reset'));
  }
  return li;
}

/** Reads the server-sent events of the alarm stream until `signal` aborts. */
async function follow(signal, onEvent) {
  const resp = await fetch('/api/v1/alarms/stream', { headers: authHeaders(), signal, cache: 'no-store' });
  if (!resp.ok || !resp.body) return;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      if (data) {
        try {
          onEvent(JSON.parse(data));
        } catch {
          // A keep-alive comment or a lag notice: nothing to show.
        }
      }
    }
  }
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

/** The alarms page; `onLeave` registers cleanups (the live stream). */
export async function alarmsView(main, onLeave) {
  const list = h('ul', { class: 'alarms', 'aria-live': 'polite' });
  main.append(h('h1', {}, 'Alarms'), pushControl(), list);
  const devices = await api('GET', '/devices');
  const names = new Map(devices.map((d) => [d.id, d.name || d.id]));
  const page = await api('GET', '/alarms?limit=100');
  if (!page.alarms.length) list.append(h('li', { class: 'hint', id: 'no-alarms' }, 'No alarms yet.'));
  for (const a of page.alarms) list.append(alarmItem(a, names));
  const ctl = new AbortController();
  onLeave(() => ctl.abort());
  follow(ctl.signal, (ev) => {
    if (!ev?.alarm) return;
    list.querySelector('#no-alarms')?.remove();
    const item = alarmItem(ev.alarm, names);
    const old = list.querySelector(`#alarm-${ev.alarm.id}`);
    if (old) old.replaceWith(item);
    else list.prepend(item);
  }).catch(() => {});
}
