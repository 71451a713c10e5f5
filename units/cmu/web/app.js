// peercam web client (CU / M_CU, H.626.4 6.3): plain ES modules, no build step.
// Talks only to this CMU's /api/v1 (docs/protocol.md "Cm"); live view over WebRTC is in live.js.

import { LiveSession, PATH_LABEL } from './live.js';

export const VERSION = '0.1.0';
/** The client platform name of 8.11.2 (the `model` of a client release). */
const PLATFORM = 'web';
const SCOPES = ['live', 'playback', 'ptz', 'talk', 'config'];
const SCOPE_LABEL = {
  live: 'Live view', playback: 'Recordings', ptz: 'Pan, tilt, zoom', talk: 'Talk', config: 'Settings',
};

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Builds an element: `h('button', {type: 'button', onclick}, 'Text')`. Never parses HTML. */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (typeof v !== 'string' && typeof v !== 'number' && k in el) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
let seq = 0;
const uid = (p) => `${p}-${++seq}`;

/** A labelled input with a hint and a place for its error. `data-field` names the API field. */
function field(label, input, hint) {
  if (!(input instanceof Node)) input = h('input', input);
  if (!input.id) input.id = uid('f');
  const err = h('small', { class: 'field-error', id: `${input.id}-err` });
  const describedBy = [err.id];
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { class: 'hint', id: `${input.id}-hint` }, hint);
    describedBy.unshift(hintEl.id);
  }
  input.setAttribute('aria-describedby', describedBy.join(' '));
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl, err);
}

function check(label, props) {
  const input = h('input', { type: 'checkbox', id: uid('c'), ...props });
  return h('div', { class: 'check' }, input, h('label', { for: input.id }, label));
}

function select(props, options, value) {
  const s = h('select', props, options.map(([v, l]) => h('option', { value: v }, l)));
  if (value !== undefined) s.value = String(value);
  return s;
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 4000);
}

/** What to tell the user about an error. */
function messageOf(e) {
  if (e instanceof ApiError) {
    const m = sentence(e.message);
    if (e.code === 'invalid' || (e.fields && e.fields.length)) return `${m} Correct the marked fields and try again.`;
    return m;
  }
  return `Something went wrong (${e?.message ?? e}). Reload the page and try again.`;
}

/** The server's messages as sentences: "wrong code; try again" -> "Wrong code; try again." */
function sentence(m) {
  const t = String(m ?? '').trim();
  if (!t) return 'Something went wrong. Try again.';
  const c = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(c) ? c : `${c}.`;
}

/** A form whose submit runs `onSubmit(form)`; errors appear in the form, by field. */
function form(props, onSubmit, ...kids) {
  const errBox = h('p', { class: 'error', role: 'alert', tabindex: '-1', hidden: true });
  const f = h('form', props, ...kids, errBox);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(f);
    const buttons = [...f.querySelectorAll('button')];
    buttons.forEach((b) => { b.disabled = true; });
    f.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(f);
    } catch (e) {
      showError(f, e);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      f.removeAttribute('aria-busy');
    }
  });
  return f;
}

function clearErrors(f) {
  const box = f.querySelector(':scope > .error');
  box.hidden = true;
  box.textContent = '';
  f.querySelectorAll('[aria-invalid]').forEach((i) => i.removeAttribute('aria-invalid'));
  f.querySelectorAll('.field-error').forEach((m) => { m.textContent = ''; });
}

function showError(f, e) {
  const box = f.querySelector(':scope > .error');
  box.textContent = messageOf(e);
  box.hidden = false;
  let first = null;
  for (const fe of e?.fields ?? []) {
    const input = f.querySelector(`[data-field="${CSS.escape(fe.field)}"]`);
    if (!input) continue;
    input.setAttribute('aria-invalid', 'true');
    const m = f.querySelector(`#${CSS.escape(input.id)}-err`);
    if (m) m.textContent = fe.message;
    first ??= input;
  }
  (first ?? box).focus();
}

const fmtTime = (s) => (s ? new Date(s * 1000).toLocaleString() : 'never');
const fmtMs = (ms) => new Date(ms).toLocaleTimeString();
function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Saves a blob as a file through a temporary link. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---------------------------------------------------------------------------------------------
// API

export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const SESSION_KEY = 'peercam.session';
let session = null;
try {
  session = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null');
  if (session && session.expires_at * 1000 < Date.now()) session = null;
} catch {
  session = null;
}

function setSession(s) {
  session = s;
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
  renderNav();
}

/** Calls the CMU API; resolves to the JSON body (null for 204), rejects with an ApiError. */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session?.token) headers.Authorization = `Bearer ${session.token}`;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      keepalive: !!opts.keepalive,
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the peercam server. Check your connection and try again.');
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = new ApiError(
      resp.status,
      data?.error ?? `http_${resp.status}`,
      data?.message ?? `The server answered ${resp.status}. Try again in a moment.`,
      data?.fields ?? [],
    );
    if (resp.status === 401 && session && path !== '/login') {
      setSession(null);
      sessionStorage.setItem('peercam.notice', 'Your session ended. Log in again.');
      location.hash = '#/login';
    }
    throw err;
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Router

const routes = [];
const route = (pattern, view, opts = {}) => routes.push({ pattern, view, ...opts });
/** Cleanups of the current view (timers, live sessions), run when the view changes. */
let teardown = [];
const onLeave = (fn) => teardown.push(fn);

async function render() {
  const hash = location.hash || (session ? homeHash() : '#/login');
  for (const fn of teardown.splice(0)) {
    try {
      await fn();
    } catch (e) {
      console.warn('cleanup failed', e);
    }
  }
  const r = routes.find((x) => x.pattern.test(hash));
  const main = $('#main');
  if (!r) {
    location.replace(session ? homeHash() : '#/login');
    return;
  }
  if (!r.public && !session) {
    location.replace('#/login');
    return;
  }
  if (r.public && session && r.pattern.source.includes('login')) {
    location.replace(homeHash());
    return;
  }
  renderNav(hash);
  main.replaceChildren();
  const params = hash.match(r.pattern).slice(1).map(decodeURIComponent);
  try {
    await r.view(main, ...params);
  } catch (e) {
    main.append(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
  }
  const h1 = main.querySelector('h1');
  if (h1) {
    document.title = `${h1.textContent} · peercam`;
    h1.setAttribute('tabindex', '-1');
    if (render.count++ > 0) h1.focus({ preventScroll: true });
  }
}
render.count = 0;

function homeHash() {
  return session?.user?.role === 'operator' ? '#/operator' : '#/devices';
}

function renderNav(hash = location.hash) {
  const nav = $('#nav');
  nav.hidden = !session;
  const role = session?.user?.role;
  nav.querySelector('[data-nav=devices]').hidden = role === 'operator';
  nav.querySelector('[data-nav=operator]').hidden = role !== 'operator';
  for (const a of nav.querySelectorAll('a')) {
    const on = hash.startsWith(`#/${a.dataset.nav}`) || (a.dataset.nav === 'devices' && hash.startsWith('#/device/'));
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------------------------------------
// Login, sign-up (6.1.1)

route(/^#\/login$/, (main) => {
  const notice = sessionStorage.getItem('peercam.notice');
  sessionStorage.removeItem('peercam.notice');
  main.append(
    h('h1', null, 'Log in'),
    notice && h('p', { class: 'notice', role: 'status' }, notice),
    form({ class: 'card narrow', 'aria-label': 'Log in' }, async (f) => {
      const r = await api('POST', '/login', { login: f.login.value.trim(), password: f.password.value });
      setSession({ token: r.token, expires_at: r.expires_at, user: r.user });
      reportUpdated();
      location.hash = homeHash();
    },
    field('Phone number or user name', { name: 'login', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }, 'Owners log in with their phone number, e.g. +15551234567.'),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    h('button', { type: 'submit', class: 'primary' }, 'Log in')),
    h('p', null, 'New here? ', h('a', { href: '#/signup' }, 'Sign up with your phone number'), '.'),
  );
}, { public: true });

route(/^#\/signup$/, (main) => {
  let phone = '';
  const box = h('div', { class: 'card narrow' });
  const step1 = () => box.replaceChildren(
    h('h2', null, 'Step 1 of 2: your phone'),
    form({ 'aria-label': 'Sign up' }, async (f) => {
      if (f.password.value !== f.password2.value) {
        throw new ApiError(400, 'invalid', 'The two passwords differ.', [{ field: 'password2', message: 'type the same password twice' }]);
      }
      phone = f.phone.value.replace(/[\s()-]/g, '');
      await api('POST', '/signup', { phone, password: f.password.value });
      step2();
    },
    field('Mobile phone number', { name: 'phone', type: 'tel', inputmode: 'tel', autocomplete: 'tel', required: true, placeholder: '+15551234567', dataset: { field: 'phone' } }, 'With + and the country code. We send a 6-digit code to it.'),
    field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: '10', required: true, dataset: { field: 'password' } }, 'At least 10 characters.'),
    field('Password again', { name: 'password2', type: 'password', autocomplete: 'new-password', required: true, dataset: { field: 'password2' } }),
    h('button', { type: 'submit', class: 'primary' }, 'Send code')),
  );
  const step2 = () => {
    box.replaceChildren(
      h('h2', null, 'Step 2 of 2: the code'),
      h('p', null, `We sent a 6-digit code by SMS to ${phone}.`),
      form({ 'aria-label': 'Confirm code' }, async (f) => {
        const r = await api('POST', '/signup/confirm', { phone, code: f.code.value.trim() });
        done(r);
      },
      field('Code from the SMS', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: true, dataset: { field: 'code' } }),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary' }, 'Confirm'),
        h('button', { type: 'button', class: 'link', onclick: step1 }, 'Wrong number? Start again'))),
    );
    box.querySelector('input').focus();
  };
  const done = (r) => {
    box.replaceChildren(
      h('h2', null, 'Phone confirmed'),
      h('p', { role: 'status', class: 'notice', id: 'signup-done' },
        r.status === 'active'
          ? 'Your account is ready. Log in now.'
          : 'Your account now waits for the operator to approve it. You can log in as soon as it is approved.'),
      h('a', { href: '#/login', class: 'button primary' }, 'Go to log in'),
    );
    box.querySelector('h2').focus();
  };
  main.append(h('h1', null, 'Sign up'), box, h('p', null, 'Have an account? ', h('a', { href: '#/login' }, 'Log in'), '.'));
  step1();
}, { public: true });

// ---------------------------------------------------------------------------------------------
// Devices and binding (8.2)

route(/^#\/devices$/, async (main) => {
  const list = h('ul', { class: 'devices', 'aria-label': 'Your devices', 'aria-live': 'polite' });
  const refresh = async () => {
    const devices = await api('GET', '/devices');
    list.replaceChildren(...devices.map(deviceCard));
    if (!devices.length) {
      list.append(h('li', { class: 'empty' },
        session.user.role === 'owner'
          ? 'No devices yet. Add one with the id and bind code from its sticker, below.'
          : 'Nothing is shared with you yet. Ask the account owner to share a camera.'));
    }
  };
  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Devices'),
      h('button', { type: 'button', onclick: () => refresh().catch((e) => toast(messageOf(e))) }, 'Refresh')),
    list,
  );
  if (session.user.role === 'owner') {
    main.append(h('section', { class: 'card', 'aria-labelledby': 'bind-h' },
      h('h2', { id: 'bind-h' }, 'Add a camera'),
      h('p', { class: 'muted' }, 'Type the device id and the bind code printed on the camera’s sticker. The camera must be switched on and online.'),
      form({ 'aria-label': 'Add a camera', class: 'grid' }, async (f) => {
        const body = { device_id: f.device_id.value.trim(), bind_code: f.bind_code.value.trim().toUpperCase() };
        if (f.name.value.trim()) body.name = f.name.value.trim();
        const d = await api('POST', '/devices/bind', body);
        f.reset();
        toast(`${d.name} added.`);
        await refresh();
      },
      field('Device id', { name: 'device_id', required: true, autocapitalize: 'none', spellcheck: 'false', dataset: { field: 'device_id' } }),
      field('Bind code', { name: 'bind_code', required: true, autocapitalize: 'characters', spellcheck: 'false', placeholder: 'ABCD-EFGH-JKMN', dataset: { field: 'bind_code' } }),
      field('Name (optional)', { name: 'name', maxlength: '64', dataset: { field: 'name' } }, 'For example “Front door”.'),
      h('button', { type: 'submit', class: 'primary' }, 'Add camera'))));
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 10_000);
  onLeave(() => clearInterval(timer));
});

function deviceCard(d) {
  const can = (s) => d.scopes.includes(s);
  const base = `#/device/${encodeURIComponent(d.id)}`;
  return h('li', { class: 'device card', dataset: { deviceId: d.id, online: String(d.online) } },
    h('div', { class: 'device-head' },
      h('h2', null, d.name),
      h('span', { class: `badge ${d.online ? 'online' : 'offline'}` }, d.online ? 'Online' : 'Offline')),
    h('p', { class: 'muted' }, `${d.vendor} ${d.model} · ${d.kind.toUpperCase()} · `, h('code', null, d.id)),
    !d.online && h('p', { class: 'muted' }, `Last seen ${fmtTime(d.last_seen)}.`),
    d.relation === 'shared' && h('p', { class: 'muted' }, `Shared with you: ${d.scopes.map((s) => SCOPE_LABEL[s] ?? s).join(', ')}.`),
    h('div', { class: 'actions' },
      can('live') && h('a', { class: 'button primary', href: `${base}/live` }, 'Live view'),
      can('playback') && h('a', { class: 'button', href: `${base}/recordings` }, 'Recordings'),
      can('config') && h('a', { class: 'button', href: `${base}/settings` }, 'Settings'),
      d.relation === 'owner' && h('a', { class: 'button', href: `${base}/sharing` }, 'Sharing')));
}

/** The heading and tabs of a device page. */
async function deviceFrame(main, id, tab, title) {
  const d = await api('GET', `/devices/${encodeURIComponent(id)}`);
  const base = `#/device/${encodeURIComponent(id)}`;
  const tabs = [
    ['live', 'Live', d.scopes.includes('live')],
    ['recordings', 'Recordings', d.scopes.includes('playback')],
    ['settings', 'Settings', d.scopes.includes('config')],
    ['sharing', 'Sharing', d.relation === 'owner'],
  ].filter((t) => t[2]);
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/devices' }, '← All devices')),
    h('div', { class: 'heading' },
      h('h1', null, `${d.name}: ${title}`),
      h('span', { class: `badge ${d.online ? 'online' : 'offline'}` }, d.online ? 'Online' : 'Offline')),
    h('nav', { class: 'tabs', 'aria-label': 'Device' }, tabs.map(([t, label]) =>
      h('a', { href: `${base}/${t}`, 'aria-current': t === tab ? 'page' : null }, label))),
  );
  return d;
}

// ---------------------------------------------------------------------------------------------
// Live view (8.4 over WebRTC, 8.5 PTZ, 6.1.3 snapshot and local recording)

route(/^#\/device\/([^/]+)\/live$/, async (main, id) => {
  const d = await deviceFrame(main, id, 'live', 'live view');
  const video = h('video', { playsinline: true, muted: true, autoplay: true, 'aria-label': `Live picture of ${d.name}` });
  video.muted = true;
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' }, 'Press Play to start.');
  const pathBadge = h('span', { class: 'badge path', id: 'path-badge', title: 'How the picture reaches you' }, 'Not connected');
  const stats = h('span', { class: 'muted', id: 'live-stats' });
  const quality = select({ id: 'quality', 'aria-label': 'Picture size' }, [
    ['auto', 'Auto size'], ['720p', '720p (1280×720)'], ['d1', 'D1 (704×576)'], ['cif', 'CIF (352×288)'],
  ], 'auto');
  let live = null;
  let recorder = null;
  const playBtn = h('button', { type: 'button', class: 'primary', id: 'play' }, 'Play');
  const soundBtn = h('button', { type: 'button', 'aria-pressed': 'false', id: 'sound' }, 'Sound off');
  const snapBtn = h('button', { type: 'button', id: 'snapshot' }, 'Snapshot');
  const recBtn = h('button', { type: 'button', 'aria-pressed': 'false', id: 'record' }, 'Record');

  const stop = async () => {
    if (recorder) stopRecording();
    if (!live) return;
    const l = live;
    live = null;
    await l.stop();
    video.srcObject = null;
    playBtn.textContent = 'Play';
    pathBadge.textContent = 'Not connected';
    pathBadge.className = 'badge path';
    status.textContent = 'Stopped. Press Play to watch again.';
  };
  const start = async () => {
    playBtn.disabled = true;
    status.textContent = 'Connecting to the camera…';
    const size = quality.value === 'auto' ? autoSize(video) : quality.value;
    const dims = { '720p': [1280, 720], d1: [704, 576], cif: [352, 288] }[size];
    live = new LiveSession({
      api,
      deviceId: d.id,
      video,
      forceRelay: new URLSearchParams(location.search).get('relay') === '1',
      request: { max_width: dims[0], max_height: dims[1], max_fps: 25, audio: 'pcmu' },
      onPath: (p) => {
        pathBadge.textContent = PATH_LABEL[p.shown];
        pathBadge.className = `badge path ${p.shown}`;
        pathBadge.dataset.path = p.shown;
      },
      onStats: (s) => { stats.textContent = `connected in ${s.connect_ms} ms · ${fmtBytes(s.bytes)}`; },
    });
    try {
      await live.start();
      playBtn.textContent = 'Stop';
      status.textContent = 'Playing.';
    } catch (e) {
      live = null;
      status.textContent = liveMessage(e);
    } finally {
      playBtn.disabled = false;
    }
  };
  playBtn.addEventListener('click', () => (live ? stop() : start()));
  soundBtn.addEventListener('click', () => {
    video.muted = !video.muted;
    soundBtn.setAttribute('aria-pressed', String(!video.muted));
    soundBtn.textContent = video.muted ? 'Sound off' : 'Sound on';
  });
  snapBtn.addEventListener('click', () => {
    if (!video.videoWidth) {
      toast('There is no picture yet. Press Play first, then take the snapshot.');
      return;
    }
    const c = h('canvas', { width: video.videoWidth, height: video.videoHeight });
    c.getContext('2d').drawImage(video, 0, 0);
    c.toBlob((b) => {
      download(b, `peercam-${d.id}-${stamp()}.png`);
      toast('Snapshot saved.');
    }, 'image/png');
  });
  const stopRecording = () => {
    recorder.stop();
    recorder = null;
    recBtn.textContent = 'Record';
    recBtn.setAttribute('aria-pressed', 'false');
  };
  recBtn.addEventListener('click', () => {
    if (recorder) {
      stopRecording();
      return;
    }
    if (!video.srcObject) {
      toast('Nothing to record yet. Press Play first.');
      return;
    }
    const type = ['video/webm;codecs=vp8,opus', 'video/webm;codecs=vp8', 'video/webm']
      .find((t) => MediaRecorder.isTypeSupported(t));
    const chunks = [];
    recorder = new MediaRecorder(video.srcObject, type ? { mimeType: type } : undefined);
    recorder.ondataavailable = (ev) => { if (ev.data.size) chunks.push(ev.data); };
    recorder.onstop = () => {
      download(new Blob(chunks, { type: 'video/webm' }), `peercam-${d.id}-${stamp()}.webm`);
      toast('Recording saved.');
    };
    recorder.start(1000);
    recBtn.textContent = 'Stop recording';
    recBtn.setAttribute('aria-pressed', 'true');
  });
  onLeave(stop);
  const leaving = new AbortController();
  window.addEventListener('pagehide', () => live?.stop({ keepalive: true }), { signal: leaving.signal });
  onLeave(() => leaving.abort());

  const layout = h('div', { class: 'live-layout' }, h('section', { class: 'live', 'aria-label': 'Live picture' },
    h('div', { class: 'video-wrap' }, video),
    h('div', { class: 'live-bar' }, playBtn, soundBtn, snapBtn, recBtn, quality),
    h('p', { class: 'live-info' }, 'Path: ', pathBadge, ' ', stats),
    status));
  main.append(layout);
  if (d.scopes.includes('ptz')) layout.append(ptzPanel(d, video));
  if (!d.online) status.textContent = 'The camera is offline. Check its power and network, then press Play.';
});

function liveMessage(e) {
  if (e instanceof ApiError && e.code === 'no_route') {
    return 'This server cannot start a live view in the browser yet (no WebRTC endpoint). Ask the operator to update peercam, or use an RTSP player with “peercam cu url”.';
  }
  return sentence(e?.message ?? e);
}

function autoSize(video) {
  const w = (video.clientWidth || window.innerWidth) * (window.devicePixelRatio || 1);
  if (w <= 400) return 'cif';
  if (w <= 800) return 'd1';
  return '720p';
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);

function ptzPanel(d, video) {
  const path = `/devices/${encodeURIComponent(d.id)}/ptz`;
  const presets = h('ul', { class: 'presets', 'aria-label': 'Presets' });
  const note = h('p', { class: 'muted', role: 'status' });
  const send = async (cmd) => {
    try {
      const st = await api('POST', path, cmd);
      showPresets(st.presets);
      note.textContent = `Pan ${st.pan.toFixed(2)}, tilt ${st.tilt.toFixed(2)}, zoom ${st.zoom.toFixed(1)}×`;
      return st;
    } catch (e) {
      note.textContent = messageOf(e);
      return null;
    }
  };
  const showPresets = (list) => {
    presets.replaceChildren(...list.map((p) => h('li', null,
      h('button', { type: 'button', onclick: () => send({ op: 'preset_goto', slot: p.slot }) }, `Go to ${p.name || `preset ${p.slot}`}`),
      h('button', { type: 'button', class: 'link', 'aria-label': `Forget ${p.name || `preset ${p.slot}`}`, onclick: () => send({ op: 'preset_remove', slot: p.slot }) }, 'Forget'))));
    if (!list.length) presets.append(h('li', { class: 'muted' }, 'No presets yet.'));
  };
  /** A hold-to-move button: pointer or Enter/Space held down moves, release stops. */
  const hold = (label, text, move) => {
    const b = h('button', { type: 'button', class: 'ptz', 'aria-label': label }, text);
    let moving = false;
    const go = (ev) => {
      ev.preventDefault();
      if (moving) return;
      moving = true;
      b.classList.add('active');
      send({ op: 'move', ...move, timeout_ms: 3000 });
    };
    const end = () => {
      if (!moving) return;
      moving = false;
      b.classList.remove('active');
      send({ op: 'stop' });
    };
    b.addEventListener('pointerdown', (ev) => { b.setPointerCapture?.(ev.pointerId); go(ev); });
    b.addEventListener('pointerup', end);
    b.addEventListener('pointercancel', end);
    b.addEventListener('lostpointercapture', end);
    b.addEventListener('keydown', (ev) => { if ((ev.key === 'Enter' || ev.key === ' ') && !ev.repeat) go(ev); });
    b.addEventListener('keyup', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') end(); });
    b.addEventListener('blur', end);
    return b;
  };
  const S = 0.5;
  const pad = h('div', { class: 'ptz-pad', role: 'group', 'aria-label': 'Turn the camera (hold to move)' },
    h('span'), hold('Tilt up', '▲', { tilt: S }), h('span'),
    hold('Pan left', '◀', { pan: -S }), h('span', { class: 'ptz-hint' }, 'hold'), hold('Pan right', '▶', { pan: S }),
    h('span'), hold('Tilt down', '▼', { tilt: -S }), h('span'));
  const zoom = h('div', { class: 'ptz-zoom', role: 'group', 'aria-label': 'Zoom (hold)' },
    hold('Zoom in', '+ Zoom in', { zoom: S }), hold('Zoom out', '− Zoom out', { zoom: -S }));
  // Arrow keys on the picture move the camera too.
  const keys = { ArrowLeft: { pan: -S }, ArrowRight: { pan: S }, ArrowUp: { tilt: S }, ArrowDown: { tilt: -S }, '+': { zoom: S }, '-': { zoom: -S } };
  const wrap = video.parentElement;
  wrap.tabIndex = 0;
  wrap.setAttribute('aria-label', 'Live picture; arrow keys turn the camera, + and − zoom');
  let held = null;
  wrap.addEventListener('keydown', (ev) => {
    const m = keys[ev.key];
    if (!m) return;
    ev.preventDefault();
    if (held) return;
    held = ev.key;
    send({ op: 'move', ...m, timeout_ms: 3000 });
  });
  wrap.addEventListener('keyup', (ev) => {
    if (ev.key !== held) return;
    held = null;
    send({ op: 'stop' });
  });
  const save = form({ class: 'inline', 'aria-label': 'Save preset' }, async (f) => {
    const st = await api('POST', path, { op: 'preset_set', slot: Number(f.pslot.value), name: f.pname.value.trim() });
    showPresets(st.presets);
    toast('Preset saved.');
  },
  field('Slot', { name: 'pslot', type: 'number', min: '1', max: '32', value: '1', required: true, dataset: { field: 'slot' } }),
  field('Name', { name: 'pname', maxlength: '32', dataset: { field: 'name' } }),
  h('button', { type: 'submit' }, 'Save current position'));
  // A stop answers with the current position and the presets.
  send({ op: 'stop' });
  return h('section', { class: 'card ptz-panel', 'aria-labelledby': 'ptz-h' },
    h('h2', { id: 'ptz-h' }, 'Pan, tilt and zoom'),
    h('div', { class: 'ptz-controls' }, pad, zoom),
    note,
    h('h3', null, 'Presets'), presets, save);
}

// ---------------------------------------------------------------------------------------------
// Recordings (placeholder: the list only; playback comes later)

route(/^#\/device\/([^/]+)\/recordings$/, async (main, id) => {
  const d = await deviceFrame(main, id, 'recordings', 'recordings');
  const out = h('div', { 'aria-live': 'polite' });
  const today = new Date();
  const iso = (x) => `${x.getFullYear()}-${String(x.getMonth() + 1).padStart(2, '0')}-${String(x.getDate()).padStart(2, '0')}`;
  const show = async (day) => {
    const from = new Date(`${day}T00:00:00`);
    const to = new Date(from.getTime() + 86_400_000);
    const q = new URLSearchParams({ from: from.toISOString().replace(/\.\d+Z$/, 'Z'), to: to.toISOString().replace(/\.\d+Z$/, 'Z') });
    const list = await api('GET', `/devices/${encodeURIComponent(d.id)}/recordings?${q}`);
    out.replaceChildren(
      h('h2', null, `Recorded on ${from.toLocaleDateString()}`),
      list.spans.length
        ? h('ul', { class: 'spans' }, list.spans.map((s) => h('li', null, `${fmtMs(s.start_ms)} – ${fmtMs(s.end_ms)} (${fmtBytes(s.bytes)})`)))
        : h('p', { class: 'muted' }, 'Nothing recorded on this day.'),
      list.events.length > 0 && h('h3', null, 'Events'),
      list.events.length > 0 && h('ul', null, list.events.map((e) => h('li', null, `${fmtMs(e.at_ms)} ${e.kind}${e.detail ? `: ${e.detail}` : ''}`))),
    );
  };
  main.append(
    h('p', { class: 'notice' }, 'Playback in the browser is coming. For now this lists what was recorded; play it with “peercam cu playback”.'),
    form({ class: 'inline', 'aria-label': 'Choose a day' }, (f) => show(f.day.value),
      field('Day', { name: 'day', type: 'date', value: iso(today), required: true }),
      h('button', { type: 'submit' }, 'Show')),
    out,
  );
  await show(iso(today)).catch((e) => out.replaceChildren(h('p', { class: 'error', role: 'alert' }, messageOf(e))));
});

// ---------------------------------------------------------------------------------------------
// Settings: parameters (8.9.1) and WLAN (6.1.11)

route(/^#\/device\/([^/]+)\/settings$/, async (main, id) => {
  const d = await deviceFrame(main, id, 'settings', 'settings');
  const paramsBox = h('section', { class: 'card', 'aria-labelledby': 'params-h' }, h('h2', { id: 'params-h' }, 'Camera settings'), h('p', { class: 'muted' }, 'Loading…'));
  const wlanBox = h('section', { class: 'card', 'aria-labelledby': 'wlan-h' }, h('h2', { id: 'wlan-h' }, 'Wi-Fi'), h('p', { class: 'muted' }, 'Loading…'));
  main.append(paramsBox, wlanBox);
  const dev = `/devices/${encodeURIComponent(d.id)}`;
  const fail = (box, e) => box.replaceChildren(box.firstChild, h('p', { class: 'error', role: 'alert' }, messageOf(e)));
  const loadParams = async () => {
    const st = await api('GET', `${dev}/params`);
    paramsBox.replaceChildren(paramsBox.firstChild, paramsForm(dev, st, loadParams));
  };
  const loadWlan = async () => {
    const st = await api('GET', `${dev}/wlan`);
    wlanBox.replaceChildren(wlanBox.firstChild, ...wlanForm(dev, st, loadWlan));
  };
  await Promise.all([loadParams().catch((e) => fail(paramsBox, e)), loadWlan().catch((e) => fail(wlanBox, e))]);
});

function num(label, name, value, min, max, hint) {
  return field(label, { name, type: 'number', inputmode: 'numeric', min: String(min), max: String(max), value: String(value), required: true, dataset: { field: name } }, hint ?? `${min} to ${max}.`);
}

function paramsForm(dev, st, reload) {
  const p = st.params;
  return form({ class: 'settings', 'aria-label': 'Camera settings' }, async (f) => {
    const next = structuredClone(p);
    next.video.max_resolution = f['video.max_resolution'].value;
    next.video.max_fps = Number(f['video.max_fps'].value);
    next.video.max_kbps = Number(f['video.max_kbps'].value);
    next.video.gop_s = Number(f['video.gop_s'].value);
    next.osd.text = f['osd.text'].value;
    next.osd.show_clock = f['osd.show_clock'].checked;
    next.night.mode = f['night.mode'].value;
    next.night.switch_delay_s = Number(f['night.switch_delay_s'].value);
    next.night.dark_threshold_pct = Number(f['night.dark_threshold_pct'].value);
    next.audio.enabled = f['audio.enabled'].checked;
    next.utc_offset_min = Number(f.utc_offset_min.value);
    const permit = await api('POST', `${dev}/params/permit`);
    try {
      await api('PUT', `${dev}/params`, { permit: permit.permit, base_revision: st.revision, params: next });
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        await reload();
        throw new ApiError(409, e.code, 'Someone changed these settings meanwhile. They were reloaded: check them and save again.');
      }
      throw e;
    }
    toast('Settings saved on the camera.');
    await reload();
  },
  h('p', { class: 'muted' }, `Now: ${st.ir_lamp_on ? 'night (IR lamp on)' : 'day'}, light ${st.light_pct} %. Revision ${st.revision}.`),
  h('fieldset', null, h('legend', null, 'Video'),
    field('Largest picture', select({ name: 'video.max_resolution', dataset: { field: 'video.max_resolution' } }, [['720p', '720p (1280×720)'], ['d1', 'D1 (704×576)'], ['cif', 'CIF (352×288)']], p.video.max_resolution)),
    num('Highest frame rate (fps)', 'video.max_fps', p.video.max_fps, 1, 25),
    num('Highest bit rate (kbit/s)', 'video.max_kbps', p.video.max_kbps, 32, 8000),
    num('Key frame every (s)', 'video.gop_s', p.video.gop_s, 1, 10)),
  h('fieldset', null, h('legend', null, 'On-screen text'),
    field('Caption', { name: 'osd.text', value: p.osd.text, maxlength: '24', dataset: { field: 'osd.text' } }, 'Up to 24 plain letters, digits and punctuation.'),
    check('Show the clock', { name: 'osd.show_clock', checked: p.osd.show_clock })),
  h('fieldset', null, h('legend', null, 'Night vision'),
    field('Mode', select({ name: 'night.mode', dataset: { field: 'night.mode' } }, [['auto', 'Automatic'], ['day', 'Always day (colour)'], ['night', 'Always night (IR)']], p.night.mode)),
    num('Switch after (s)', 'night.switch_delay_s', p.night.switch_delay_s, 0, 60, 'How long the light must stay past the threshold, 0 to 60 s.'),
    num('Night below light level (%)', 'night.dark_threshold_pct', p.night.dark_threshold_pct, 1, 90)),
  h('fieldset', null, h('legend', null, 'Audio and time'),
    check('Offer sound to viewers', { name: 'audio.enabled', checked: p.audio.enabled }),
    num('Time zone offset (minutes from UTC)', 'utc_offset_min', p.utc_offset_min, -720, 840, 'For the on-screen clock, e.g. 60 for UTC+1.')),
  h('button', { type: 'submit', class: 'primary' }, 'Save settings'));
}

function wlanForm(dev, st, reload) {
  const f = form({ class: 'grid', 'aria-label': 'Switch Wi-Fi network' }, async (fm) => {
    const body = { ssid: fm.ssid.value, security: fm.security.value, passphrase: fm.security.value === 'open' ? '' : fm.passphrase.value };
    await api('PUT', `${dev}/wlan`, body);
    toast('The camera is switching networks.');
    await reload();
  },
  field('Network name', { name: 'ssid', required: true, maxlength: '32', dataset: { field: 'ssid' } }),
  field('Security', select({ name: 'security', dataset: { field: 'security' } }, [['wpa2_psk', 'WPA2'], ['wpa3_sae', 'WPA3'], ['open', 'Open (no password)']], 'wpa2_psk')),
  field('Password', { name: 'passphrase', type: 'password', autocomplete: 'off', dataset: { field: 'passphrase' } }, '8 to 63 characters; empty for an open network.'),
  h('button', { type: 'submit', class: 'primary' }, 'Switch network'));
  const sec = f.querySelector('[name=security]');
  sec.addEventListener('change', () => { f.passphrase.disabled = sec.value === 'open'; });
  const use = (n) => {
    f.ssid.value = n.ssid;
    sec.value = n.security;
    f.passphrase.disabled = n.security === 'open';
    (n.security === 'open' ? f.querySelector('button[type=submit]') : f.passphrase).focus();
  };
  return [
    h('p', null, st.current ? `Connected to “${st.current}”.` : 'Not on a Wi-Fi network.'),
    st.last_switch && h('p', { class: 'muted' }, `Last switch to “${st.last_switch.ssid}”: ${st.last_switch.outcome}.`),
    st.networks.length
      ? h('table', { class: 'networks' },
        h('caption', null, 'Networks the camera sees'),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Security'), h('th', { scope: 'col' }, 'Signal'), h('td'))),
        h('tbody', null, st.networks.map((n) => h('tr', null,
          h('td', null, n.ssid), h('td', null, n.security.replace('_', ' ')), h('td', null, `${n.signal_pct} %`),
          h('td', null, h('button', { type: 'button', class: 'link', onclick: () => use(n), 'aria-label': `Use ${n.ssid}` }, 'Use'))))))
      : h('p', { class: 'muted' }, 'The camera sees no networks.'),
    h('p', { class: 'muted' }, 'If the camera cannot reach peercam through the new network, it goes back to the current one by itself.'),
    f,
  ];
}

// ---------------------------------------------------------------------------------------------
// Sharing (8.6) and sub-accounts (6.1.10)

route(/^#\/device\/([^/]+)\/sharing$/, async (main, id) => {
  const d = await deviceFrame(main, id, 'sharing', 'sharing');
  const dev = `/devices/${encodeURIComponent(d.id)}`;
  const sharesList = h('ul', { class: 'shares', 'aria-label': 'Shares', 'aria-live': 'polite' });
  const subsSelect = h('select', { name: 'username', required: true, dataset: { field: 'username' } });
  const refresh = async () => {
    const [shares, subs] = await Promise.all([api('GET', `${dev}/shares`), api('GET', '/subaccounts')]);
    sharesList.replaceChildren(...shares.map((s) => h('li', { dataset: { username: s.username } },
      h('strong', null, s.username), ` can use: ${s.scopes.map((x) => SCOPE_LABEL[x] ?? x).join(', ')} `,
      h('button', { type: 'button', 'aria-label': `Stop sharing with ${s.username}`, onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api('DELETE', `${dev}/shares/${encodeURIComponent(s.username)}`);
          toast(`No longer shared with ${s.username}.`);
          await refresh();
        } catch (e) {
          toast(messageOf(e));
          ev.target.disabled = false;
        }
      } }, 'Stop sharing'))));
    if (!shares.length) sharesList.append(h('li', { class: 'muted' }, 'Not shared with anyone.'));
    subsSelect.replaceChildren(...subs.map((s) => h('option', { value: s.username }, s.username)));
    shareForm.hidden = !subs.length;
    noSubs.hidden = subs.length > 0;
  };
  const noSubs = h('p', { class: 'muted' }, 'Create a sub-account below first; then share this camera with it.');
  const shareForm = form({ 'aria-label': 'Share this camera' }, async (f) => {
    const scopes = SCOPES.filter((s) => f[`scope-${s}`].checked);
    if (!scopes.length) throw new ApiError(400, 'invalid', 'Choose at least one thing the sub-account may do.');
    await api('POST', `${dev}/shares`, { username: f.username.value, scopes });
    toast(`Shared with ${f.username.value}.`);
    await refresh();
  },
  field('Sub-account', subsSelect),
  h('fieldset', null, h('legend', null, 'It may use'),
    SCOPES.map((s) => check(SCOPE_LABEL[s], { name: `scope-${s}`, checked: s === 'live' }))),
  h('button', { type: 'submit', class: 'primary' }, 'Share'));
  main.append(
    h('section', { class: 'card', 'aria-labelledby': 'shares-h' }, h('h2', { id: 'shares-h' }, 'Shared with'), sharesList),
    h('section', { class: 'card', 'aria-labelledby': 'share-h' }, h('h2', { id: 'share-h' }, 'Share with a sub-account'), noSubs, shareForm),
    subaccountsPanel(refresh),
  );
  await refresh();
});

function subaccountsPanel(onChange) {
  const list = h('ul', { class: 'subs', 'aria-label': 'Sub-accounts', 'aria-live': 'polite' });
  const refresh = async () => {
    const subs = await api('GET', '/subaccounts');
    list.replaceChildren(...subs.map((s) => h('li', null, h('strong', null, s.username), ` since ${fmtTime(s.created_at)} `,
      h('button', { type: 'button', 'aria-label': `Delete sub-account ${s.username}`, onclick: async () => {
        if (!window.confirm(`Delete ${s.username}? It loses every camera shared with it.`)) return;
        try {
          await api('DELETE', `/subaccounts/${encodeURIComponent(s.username)}`);
          toast(`${s.username} deleted.`);
          await refresh();
          await onChange?.();
        } catch (e) {
          toast(messageOf(e));
        }
      } }, 'Delete'))));
    if (!subs.length) list.append(h('li', { class: 'muted' }, 'No sub-accounts yet.'));
  };
  refresh().catch((e) => list.replaceChildren(h('li', { class: 'error' }, messageOf(e))));
  return h('section', { class: 'card', 'aria-labelledby': 'subs-h' },
    h('h2', { id: 'subs-h' }, 'Sub-accounts'),
    h('p', { class: 'muted' }, 'Family or staff log in with their own name and see only the cameras you share with them.'),
    list,
    form({ class: 'grid', 'aria-label': 'Create a sub-account' }, async (f) => {
      await api('POST', '/subaccounts', { username: f.sub_username.value.trim(), password: f.sub_password.value });
      toast(`Sub-account ${f.sub_username.value.trim()} created.`);
      f.reset();
      await refresh();
      await onChange?.();
    },
    field('User name', { name: 'sub_username', required: true, autocapitalize: 'none', spellcheck: 'false', pattern: '[a-z0-9._\\-]{3,32}', autocomplete: 'off', dataset: { field: 'username' } }, '3 to 32 of a–z, 0–9, . _ -'),
    field('Password', { name: 'sub_password', type: 'password', autocomplete: 'new-password', minlength: '10', required: true, dataset: { field: 'password' } }, 'At least 10 characters.'),
    h('button', { type: 'submit' }, 'Create sub-account')));
}

// ---------------------------------------------------------------------------------------------
// Account: password, sub-accounts, log out

route(/^#\/account$/, (main) => {
  const u = session.user;
  main.append(
    h('h1', null, 'Account'),
    h('p', null, `Logged in as `, h('strong', null, u.login), ` (${{ owner: 'owner', sub: 'sub-account', operator: 'operator' }[u.role] ?? u.role}).`),
    h('section', { class: 'card narrow', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Change password'),
      form({ 'aria-label': 'Change password' }, async (f) => {
        if (f.new_password.value !== f.new_password2.value) {
          throw new ApiError(400, 'invalid', 'The two new passwords differ.', [{ field: 'new_password2', message: 'type the same password twice' }]);
        }
        await api('POST', '/me/password', { old_password: f.old_password.value, new_password: f.new_password.value });
        f.reset();
        toast('Password changed. Your other sessions were logged out.');
      },
      field('Current password', { name: 'old_password', type: 'password', autocomplete: 'current-password', required: true, dataset: { field: 'old_password' } }),
      field('New password', { name: 'new_password', type: 'password', autocomplete: 'new-password', minlength: '10', required: true, dataset: { field: 'new_password' } }, 'At least 10 characters.'),
      field('New password again', { name: 'new_password2', type: 'password', autocomplete: 'new-password', required: true, dataset: { field: 'new_password2' } }),
      h('button', { type: 'submit', class: 'primary' }, 'Change password'))),
    u.role === 'owner' && subaccountsPanel(),
    h('p', null, h('button', { type: 'button', onclick: logout }, 'Log out')),
    h('p', { class: 'muted' }, `peercam web client ${VERSION}.`),
  );
});

async function logout() {
  try {
    await api('POST', '/logout');
  } catch {
    // The session is forgotten here either way.
  }
  setSession(null);
  location.hash = '#/login';
}

// ---------------------------------------------------------------------------------------------
// Operator (6.2, minimal): approve sign-ups, see devices

route(/^#\/operator$/, async (main) => {
  if (session.user.role !== 'operator') {
    main.append(h('h1', null, 'Operator'), h('p', { class: 'error' }, 'Only the operator account may open this page.'));
    return;
  }
  const pending = h('ul', { class: 'pending', 'aria-label': 'Accounts waiting for approval', 'aria-live': 'polite' });
  const devices = h('div');
  const refresh = async () => {
    const [users, devs] = await Promise.all([api('GET', '/admin/users?status=pending_approval'), api('GET', '/admin/devices')]);
    pending.replaceChildren(...users.map((u) => h('li', { dataset: { login: u.login } },
      h('strong', null, u.login), ` (account ${u.id}) `,
      h('button', { type: 'button', class: 'primary', 'aria-label': `Approve ${u.login}`, onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api('POST', `/admin/users/${u.id}/approve`);
          toast(`${u.login} approved; they can log in now.`);
          await refresh();
        } catch (e) {
          toast(messageOf(e));
          ev.target.disabled = false;
        }
      } }, 'Approve'))));
    if (!users.length) pending.append(h('li', { class: 'muted' }, 'Nobody is waiting.'));
    const online = devs.filter((x) => x.online).length;
    devices.replaceChildren(h('p', null, `${devs.length} devices provisioned, ${online} online, ${devs.filter((x) => x.owner != null).length} bound.`));
  };
  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Operator'),
      h('button', { type: 'button', onclick: () => refresh().catch((e) => toast(messageOf(e))) }, 'Refresh')),
    h('section', { class: 'card', 'aria-labelledby': 'pending-h' }, h('h2', { id: 'pending-h' }, 'Sign-ups waiting for approval'), pending),
    h('section', { class: 'card', 'aria-labelledby': 'devs-h' }, h('h2', { id: 'devs-h' }, 'Devices'), devices),
  );
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 15_000);
  onLeave(() => clearInterval(timer));
});

// ---------------------------------------------------------------------------------------------
// 8.11.2: version check and self-update (service worker)

async function checkUpdate() {
  try {
    const q = new URLSearchParams({ platform: PLATFORM, version: VERSION });
    const r = await api('GET', `/client/update?${q}`);
    $('#update').hidden = !r.update_available;
    window.peercam.update = r;
  } catch {
    // Offline or an old server: try again later.
  }
}

async function applyUpdate() {
  const reg = await navigator.serviceWorker?.getRegistration?.();
  if (reg) {
    try {
      await reg.update();
    } catch {
      // Reload anyway: the pages are fetched network first.
    }
    reg.waiting?.postMessage({ type: 'skip-waiting' });
  }
  localStorage.setItem('peercam.updating-from', VERSION);
  location.reload();
}

/** The last step of 8.11.2: after an update, tell the CMU which version runs now. */
function reportUpdated() {
  const from = localStorage.getItem('peercam.updating-from');
  if (!from || from === VERSION || !session) return;
  localStorage.removeItem('peercam.updating-from');
  api('POST', '/client/update/report', { platform: PLATFORM, version: VERSION, outcome: 'updated', detail: `from ${from}` }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Start

window.peercam = { version: VERSION, lastPlay: null, update: null };
$('#version').textContent = `peercam web ${VERSION}`;
$('#logout').addEventListener('click', logout);
$('#update-reload').addEventListener('click', applyUpdate);
window.addEventListener('hashchange', render);
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {
    // No offline shell (e.g. an untrusted test certificate); the client works without it.
  });
}
render();
reportUpdated();
checkUpdate();
setInterval(checkUpdate, 30 * 60 * 1000);
