// peercam web client (CU / M_CU, H.626.4 6.3): plain ES modules, no build step.
// Talks only to this CMU's /api/v1 (docs/protocol.md "Cm"); live view over WebRTC is in live.js.

import { messagesView, strategyView } from './alarm-settings.js';
import { startAlarmStream, stopAlarmStream } from './alarm-stream.js';
import { alarmsView } from './alarms.js';
import { cloudPlanCard } from './cloud-plan.js';
import { announcements, usageCard } from './usage.js';
import { CLIP_EXPIRIES, CLIP_MAX_MS, shareClip, sharedClipsCard } from './shared-clips.js';
import { LiveSession, PATH_LABEL, PlaybackSession, rfc3339, talkPanel } from './live.js';
import { operatorView } from './operator.js';
import { twoFactorCard } from './two-factor.js';

export const VERSION = '0.1.0';
/** The client platform name of 8.11.2 (the `model` of a client release). */
const PLATFORM = 'web';
const SCOPES = ['live', 'playback', 'ptz', 'talk', 'config'];
const SCOPE_LABEL = {
  live: 'Live view', playback: 'Recordings', ptz: 'Pan, tilt, zoom', talk: 'Talk (intercom)', config: 'Settings',
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
export function field(label, input, hint) {
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

export function check(label, props) {
  const input = h('input', { type: 'checkbox', id: uid('c'), ...props });
  return h('div', { class: 'check' }, input, h('label', { for: input.id }, label));
}

function select(props, options, value) {
  const s = h('select', props, options.map(([v, l]) => h('option', { value: v }, l)));
  if (value !== undefined) s.value = String(value);
  return s;
}

export function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 4000);
}

/** What to tell the user about an error. */
export function messageOf(e) {
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
export function form(props, onSubmit, ...kids) {
  const errBox = h('p', { class: 'error', role: 'alert', tabindex: '-1', hidden: true });
  const f = h('form', props, ...kids, errBox);
  // A field's refusal goes as soon as the user changes that field.
  f.addEventListener('input', (ev) => {
    const t = ev.target;
    if (!t?.id || !t.hasAttribute('aria-invalid')) return;
    t.removeAttribute('aria-invalid');
    const m = f.querySelector(`#${CSS.escape(t.id)}-err`);
    if (m) m.textContent = '';
  });
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
/** The logged-in account's role (`owner`, `sub`, `operator`), or null. */
export const currentRole = () => session?.user?.role ?? null;
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
  followAlarms();
}

/** One alarm stream for the whole client while a user (not the operator) is logged in. */
function followAlarms() {
  if (session && session.user?.role !== 'operator') startAlarmStream();
  else stopAlarmStream();
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
    // Issue 18 item 2: an operator who must use two-factor sign-in and has not set it up
    // may only enrol; the Account page has the card for it.
    if (err.code === 'totp_enrolment_required' && location.hash !== '#/account') {
      location.hash = '#/account';
      toast('This platform requires two-factor sign-in of operators: set it up on this page first.');
    }
    // A wrong TOTP code (401 `bad_totp`) on the enrol and turn-off forms ends no session.
    if (resp.status === 401 && session && path !== '/login' && err.code !== 'bad_totp') {
      setSession(null);
      sessionStorage.setItem('peercam.notice', 'Your session ended. Log in again.');
      location.hash = '#/login';
    }
    throw err;
  }
  return data;
}

/** The bearer header of the session, for requests `api` cannot make (the alarm stream). */
export function authHeaders() {
  return session?.token ? { Authorization: `Bearer ${session.token}` } : {};
}

/** GETs a binary API resource (a picture) as a Blob, with the bearer header; ApiError if refused. */
export async function apiBlob(path) {
  const headers = {};
  if (session?.token) headers.Authorization = `Bearer ${session.token}`;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, { headers });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the peercam server. Check your connection and try again.');
  }
  if (!resp.ok) {
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`, data?.message ?? `The server answered ${resp.status}.`);
  }
  return resp.blob();
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
  nav.querySelector('[data-nav=alarms]').hidden = role === 'operator';
  for (const a of nav.querySelectorAll('a')) {
    const on = hash.startsWith(`#/${a.dataset.nav}`) || (a.dataset.nav === 'devices' && hash.startsWith('#/device/'));
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------------------------------------
// Alarms (8.8, 6.1.9): see alarms.js

route(/^#\/alarms(?:\/\d+)?(?:\?.*)?$/, (main) => alarmsView(main, onLeave));
route(/^#\/alarms\/settings$/, (main) => messagesView(main));

// ---------------------------------------------------------------------------------------------
// Login, sign-up (6.1.1)

route(/^#\/login$/, (main) => {
  const totpField = field('Code from your authenticator app', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '11', dataset: { field: 'totp' } }, 'Six digits, or one of your recovery codes.');
  totpField.hidden = true;
  const notice = sessionStorage.getItem('peercam.notice');
  sessionStorage.removeItem('peercam.notice');
  main.append(
    h('h1', null, 'Log in'),
    notice && h('p', { class: 'notice', role: 'status' }, notice),
    form({ class: 'card narrow', 'aria-label': 'Log in' }, async (f) => {
      const body = { login: f.login.value.trim(), password: f.password.value };
      // Two-factor sign-in: the right password answers `totp_required`; ask for the code.
      if (!totpField.hidden) body.totp = f.totp.value.trim();
      let r;
      try {
        r = await api('POST', '/login', body);
      } catch (e) {
        if (e.code !== 'totp_required') throw e;
        totpField.hidden = false;
        f.totp.required = true;
        f.totp.focus();
        return;
      }
      setSession({ token: r.token, expires_at: r.expires_at, user: r.user });
      reportUpdated();
      location.hash = homeHash();
    },
    field('Phone number or user name', { name: 'login', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }, 'Owners log in with their phone number, e.g. +15551234567.'),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    totpField,
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
          : r.status === 'pending_crm'
            ? `${r.next[0].toUpperCase()}${r.next.slice(1)}. Then the operator approves it.`
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
    announcements(),
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

// Thumbnails (6.1.12): a recent picture of each online camera, at most one request a minute
// per camera (the CMU asks the camera each time), shown from a blob URL.
const THUMB_EVERY_MS = 60_000;
/** device id -> { url, at, failed, loading } */
const thumbs = new Map();

function thumbBox(d) {
  const box = h('div', { class: 'thumb', dataset: { thumbFor: d.id } });
  fillThumb(box, d);
  if (d.online) refreshThumb(d);
  return box;
}

function fillThumb(box, d) {
  const t = thumbs.get(d.id);
  if (d.online && t?.url) {
    box.replaceChildren(h('img', { src: t.url, alt: `Recent picture from ${d.name}`, width: '320', height: '180', decoding: 'async' }));
  } else {
    const why = !d.online ? 'Offline: no picture' : t?.failed ? 'No picture available' : 'Loading picture…';
    box.replaceChildren(h('span', { class: 'thumb-none' }, why));
  }
}

async function refreshThumb(d) {
  const t = thumbs.get(d.id) ?? {};
  if (t.loading || (t.at && Date.now() - t.at < THUMB_EVERY_MS)) return;
  t.loading = true;
  t.at = Date.now();
  thumbs.set(d.id, t);
  try {
    const blob = await apiBlob(`/devices/${encodeURIComponent(d.id)}/snapshot?max_width=320`);
    const old = t.url;
    t.url = URL.createObjectURL(blob);
    t.failed = false;
    if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
  } catch {
    // Refused (no `live` scope), offline meanwhile, or the camera could not take one:
    // keep the last picture if there is one, else the placeholder; retry in a minute.
    t.failed = !t.url;
  } finally {
    t.loading = false;
  }
  for (const box of document.querySelectorAll(`.thumb[data-thumb-for="${CSS.escape(d.id)}"]`)) fillThumb(box, d);
}

/**
 * The pages a device offers to this user: a camera (PU) what its scopes allow, sharing to its
 * owner; a recorder (NVR) none of its own: its recordings play from each camera's page.
 */
function devicePages(d) {
  if (d.kind !== 'pu') return [];
  return [
    ['live', 'Live', d.scopes.includes('live')],
    ['recordings', 'Playback', d.scopes.includes('playback')],
    ['settings', 'Settings', d.scopes.includes('config')],
    ['alarms', 'Alarms', d.scopes.includes('config')],
    ['sharing', 'Sharing', d.relation === 'owner'],
  ].filter((t) => t[2]).map(([t, label]) => [t, label]);
}

function deviceCard(d) {
  const pages = new Set(devicePages(d).map(([t]) => t));
  const base = `#/device/${encodeURIComponent(d.id)}`;
  return h('li', { class: 'device card', dataset: { deviceId: d.id, online: String(d.online) } },
    pages.has('live') && thumbBox(d),
    h('div', { class: 'device-head' },
      h('h2', null, d.name),
      h('span', { class: `badge ${d.online ? 'online' : 'offline'}` }, d.online ? 'Online' : 'Offline')),
    h('p', { class: 'muted' }, `${d.vendor} ${d.model} · ${d.kind.toUpperCase()} · `, h('code', null, d.id)),
    !d.online && h('p', { class: 'muted' }, `Last seen ${fmtTime(d.last_seen)}.`),
    d.relation === 'shared' && h('p', { class: 'muted' }, `Shared with you: ${d.scopes.map((s) => SCOPE_LABEL[s] ?? s).join(', ')}.`),
    d.kind === 'nvr' && h('p', { class: 'muted recorder-note' },
      'Network video recorder: choose it on a camera\'s Playback page to play what it recorded.'),
    pages.size > 0 && h('div', { class: 'actions' },
      pages.has('live') && h('a', { class: 'button primary', href: `${base}/live` }, 'Live view'),
      pages.has('recordings') && h('a', { class: 'button', href: `${base}/recordings` }, 'Playback'),
      pages.has('settings') && h('a', { class: 'button', href: `${base}/settings` }, 'Settings'),
      pages.has('alarms') && h('a', { class: 'button', href: `${base}/alarms` }, 'Alarms'),
      pages.has('sharing') && h('a', { class: 'button', href: `${base}/sharing` }, 'Sharing')));
}

/** The heading and tabs of a device page. */
export async function deviceFrame(main, id, tab, title) {
  const d = await api('GET', `/devices/${encodeURIComponent(id)}`);
  const base = `#/device/${encodeURIComponent(id)}`;
  const tabs = devicePages(d);
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
  const leavingNet = new AbortController();
  onLeave(() => leavingNet.abort());
  const playBtn = h('button', { type: 'button', class: 'primary', id: 'play' }, 'Play');
  const soundBtn = h('button', { type: 'button', 'aria-pressed': 'false', id: 'sound' }, 'Sound off');
  const snapBtn = h('button', { type: 'button', id: 'snapshot' }, 'Snapshot');
  const recBtn = h('button', { type: 'button', 'aria-pressed': 'false', id: 'record' }, 'Record');

  // The view keeps the picture while the user wants it (issue 20 "instant recovery"): a
  // session that drops (camera restarted, path broken) is replaced by a new one at once, or
  // as soon as the camera is back online; the state is shown all along and exposed as
  // `window.peercam.live` ({state, reconnects, recoveredAt}) for the tests.
  let wanted = false;
  let reconnects = 0;
  let retry = null;
  const liveState = (state, text) => {
    status.textContent = text;
    status.dataset.state = state;
    window.peercam.live = { ...(window.peercam.live ?? {}), state, reconnects };
  };
  const stop = async () => {
    wanted = false;
    clearTimeout(retry);
    if (recorder) stopRecording();
    playBtn.textContent = 'Play';
    if (!live) {
      if (status.dataset.state && status.dataset.state !== 'stopped') liveState('stopped', 'Stopped. Press Play to watch again.');
      return;
    }
    const l = live;
    live = null;
    await l.stop();
    video.srcObject = null;
    pathBadge.textContent = 'Not connected';
    pathBadge.className = 'badge path';
    liveState('stopped', 'Stopped. Press Play to watch again.');
  };
  /** One session; on a drop or a failure while still wanted, `recover`. */
  const connect = async () => {
    const size = quality.value === 'auto' ? autoSize(video) : quality.value;
    const dims = { '720p': [1280, 720], d1: [704, 576], cif: [352, 288] }[size];
    const session = new LiveSession({
      api,
      deviceId: d.id,
      video,
      forceRelay: new URLSearchParams(location.search).get('relay') === '1',
      request: { max_width: dims[0], max_height: dims[1], max_fps: 25, audio: 'pcmu' },
      talk: d.scopes.includes('talk'),
      onPath: (p) => {
        pathBadge.textContent = PATH_LABEL[p.shown];
        pathBadge.className = `badge path ${p.shown}`;
        pathBadge.dataset.path = p.shown;
      },
      onStats: (st) => { stats.textContent = `connected in ${st.connect_ms} ms · ${fmtBytes(st.bytes)}`; },
      onDrop: (why) => { if (live === session) recover(why); },
    });
    live = session;
    try {
      await session.start();
      if (live !== session) return;
      if (reconnects > 0) window.peercam.live.recoveredAt = Date.now();
      liveState('playing', reconnects > 0 ? `Playing again (reconnected ${reconnects} ×).` : 'Playing.');
    } catch (e) {
      if (live !== session) return;
      live = null;
      session.stop().catch(() => {});
      if (!wanted) return;
      if (reconnects === 0 || lostAccess(e)) {
        // The first start failed, or access is gone (unshared, unbound, logged out): say
        // why and stop; the user decides.
        wanted = false;
        playBtn.textContent = 'Play';
        liveState('failed', liveMessage(e));
        return;
      }
      retryLater(liveMessage(e));
    }
  };
  const RETRY_MS = [250, 500, 1000, 2000, 4000];
  let failures = 0;
  /** After a failed reconnection: wait (growing, at most 4 s) and try again. */
  const retryLater = (why) => {
    const wait = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)];
    liveState('reconnecting', `${sentence(why)} Trying again in ${Math.ceil(wait / 1000)} s…`);
    retry = setTimeout(() => resume().catch(() => retryLater('The camera did not answer.')), wait);
  };
  /** Access is gone for good: retrying cannot help. */
  const lostAccess = (e) => e instanceof ApiError && [401, 403, 404].includes(e.status);
  /** Starts again once the camera is online (asked every half second while it is not). */
  const resume = async () => {
    if (!wanted) return;
    let now = null;
    try {
      now = await api('GET', `/devices/${encodeURIComponent(d.id)}`);
    } catch (e) {
      if (lostAccess(e)) {
        wanted = false;
        playBtn.textContent = 'Play';
        liveState('failed', liveMessage(e));
        return;
      }
    }
    if (!wanted) return;
    if (now && !now.online) {
      liveState('waiting', 'The camera is offline. The picture comes back by itself when it returns.');
      retry = setTimeout(() => resume().catch(() => {}), 500);
      return;
    }
    liveState('reconnecting', 'Reconnecting to the camera…');
    await connect();
    if (live && status.dataset.state === 'playing') failures = 0;
  };
  /** A session dropped: drop it and reconnect. */
  const recover = (why) => {
    if (!wanted) return;
    const old = live;
    live = null;
    reconnects += 1;
    old?.stop().catch(() => {});
    video.srcObject = null;
    pathBadge.textContent = 'Reconnecting';
    pathBadge.className = 'badge path';
    delete pathBadge.dataset.path;
    const reason = { stalled: 'The picture stopped.', disconnected: 'The connection was lost.', failed: 'The connection failed.' }[why] ?? 'The connection was lost.';
    liveState('reconnecting', `${reason} Reconnecting…`);
    clearTimeout(retry);
    resume().catch(() => retryLater('The camera did not answer.'));
  };
  const start = async () => {
    wanted = true;
    reconnects = 0;
    failures = 0;
    playBtn.disabled = true;
    playBtn.textContent = 'Stop';
    liveState('connecting', 'Connecting to the camera…');
    try {
      await connect();
    } finally {
      playBtn.disabled = false;
    }
  };
  // The device's network changed (Wi-Fi to mobile): a session that is not connected now
  // is replaced at once rather than after the stall timer.
  window.addEventListener('online', () => {
    if (wanted && live?.pc && live.pc.connectionState !== 'connected') recover('disconnected');
  }, { signal: leavingNet.signal });
  playBtn.addEventListener('click', () => (wanted ? stop() : start()));
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
  if (d.scopes.includes('talk')) layout.append(talkPanel(() => live));
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
  let zoomNow = 1;
  const presets = h('ul', { class: 'presets', 'aria-label': 'Presets' });
  const note = h('p', { class: 'muted', role: 'status' });
  const send = async (cmd) => {
    try {
      const st = await api('POST', path, cmd);
      showPresets(st.presets);
      note.textContent = `Pan ${st.pan.toFixed(2)}, tilt ${st.tilt.toFixed(2)}, zoom ${st.zoom.toFixed(1)}×`;
      zoomNow = st.zoom;
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
  // Click to center (8.5): a click on the picture turns the camera so that the point clicked
  // comes to the middle. The offset is taken from the drawn picture (letterboxing aside) and
  // turned into a relative move assuming, as the camera's normalised space does, that the
  // pan range spans the world and the view shows half of it at zoom 1.
  video.addEventListener('click', (ev) => {
    if (!video.videoWidth) return;
    const r = video.getBoundingClientRect();
    const scale = Math.min(r.width / video.videoWidth, r.height / video.videoHeight);
    const w = video.videoWidth * scale;
    const hgt = video.videoHeight * scale;
    const dx = (ev.clientX - (r.left + r.width / 2)) / (w / 2);
    const dy = (ev.clientY - (r.top + r.height / 2)) / (hgt / 2);
    if (Math.abs(dx) > 1 || Math.abs(dy) > 1) return;
    const fw = 0.5 / Math.max(zoomNow, 1);
    const k = (fw / 2) / Math.max(0.5 - fw / 2, 0.05);
    const clamp = (v) => Math.max(-2, Math.min(2, v));
    send({ op: 'relative', pan: clamp(dx * k), tilt: clamp(-dy * k), zoom: 0 });
  });
  video.title = 'Click to center the camera on a point';
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
// Recordings: playback over WebRTC from the recorder (8.7.2.2, 8.7.3) with a day timeline

/** Speeds offered (RTSP Scale magnitudes) and their labels. */
const SPEEDS = [['1/4', '¼×'], ['1/2', '½×'], ['1', '1×'], ['2', '2×'], ['4', '4×'], ['8', '8×'], ['16', '16×']];
/** Timeline zoom levels: the window shown, and what an arrow key moves the cursor by. */
const ZOOMS = [
  { ms: 86_400_000, label: 'Whole day', step: 300_000 },
  { ms: 21_600_000, label: '6 hours', step: 60_000 },
  { ms: 3_600_000, label: '1 hour', step: 10_000 },
  { ms: 600_000, label: '10 minutes', step: 1_000 },
  { ms: 60_000, label: '1 minute', step: 1_000 },
];
/** Labelled tick spacings; the timeline takes the finest that leaves room for its labels. */
const TICKS = [5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000];
const pad2 = (n) => String(n).padStart(2, '0');
const isoDay = (x) => `${x.getFullYear()}-${pad2(x.getMonth() + 1)}-${pad2(x.getDate())}`;
/** Local wall-clock time, `HH:MM:SS` (and `.mmm` with `millis`). */
function clock(ms, millis = false) {
  const x = new Date(ms);
  const t = `${pad2(x.getHours())}:${pad2(x.getMinutes())}:${pad2(x.getSeconds())}`;
  return millis ? `${t}.${String(x.getMilliseconds()).padStart(3, '0')}` : t;
}
const EVENT_LABEL = {
  alarm: 'Alarm', storage_full: 'Storage full', recording_started: 'Recording started',
  recording_stopped: 'Recording stopped', camera_lost: 'Camera lost',
};

/**
 * The day's timeline on a canvas: recorded spans (the coverage map), events, the export
 * range and the cursor. A slider for assistive technology; arrow keys move the cursor (Shift:
 * ten times as far, Page Up/Down: ten minutes, Home/End: first and last recording), and the
 * cursor seeks when the keys rest (or at once with Enter); click or drag seeks too.
 */
class Timeline {
  constructor({ onSeek }) {
    this.onSeek = onSeek;
    this.day = [0, 0];
    this.spans = [];
    this.events = [];
    this.cursor = null;
    this.range = null;
    this.zoom = ZOOMS[0];
    this.viewFrom = 0;
    this.dragging = false;
    this.keyTimer = null;
    this.canvas = h('canvas', {
      class: 'timeline', tabindex: '0', role: 'slider', id: 'timeline',
      'aria-label': 'Timeline of the day (arrow keys move, Enter plays from there)',
      'aria-valuemin': '0', 'aria-valuemax': '86400',
    });
    const c = this.canvas;
    c.addEventListener('pointerdown', (ev) => {
      c.setPointerCapture?.(ev.pointerId);
      c.focus({ preventScroll: true });
      this.dragging = true;
      this.moveTo(this.msAt(ev.offsetX), false);
    });
    c.addEventListener('pointermove', (ev) => { if (this.dragging) this.moveTo(this.msAt(ev.offsetX), false); });
    const release = () => {
      if (!this.dragging) return;
      this.dragging = false;
      this.onSeek(this.cursor);
    };
    c.addEventListener('pointerup', release);
    c.addEventListener('pointercancel', () => { this.dragging = false; });
    c.addEventListener('keydown', (ev) => this.key(ev));
    new ResizeObserver(() => this.draw()).observe(c);
    window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', () => this.draw());
  }

  /** Shows a day: `[from, to)` Unix ms, its spans and events. */
  setDay(from, to, spans, events) {
    this.day = [from, to];
    this.spans = spans;
    this.events = events;
    this.viewFrom = from;
    this.follow();
    this.draw();
  }

  setZoom(ms) {
    this.zoom = ZOOMS.find((z) => z.ms === ms) ?? ZOOMS[0];
    const center = this.cursor ?? this.day[0] + this.zoom.ms / 2;
    this.viewFrom = center - this.zoom.ms / 2;
    this.follow(true);
    this.draw();
  }

  /** Where the cursor stands (from the recorder's status, or the user). */
  setCursor(ms) {
    if (this.dragging || this.keyTimer) return;
    this.cursor = ms;
    this.follow();
    this.draw();
  }

  setRange(r) {
    this.range = r;
    this.draw();
  }

  /** The shown window, within the day, keeps the cursor in view. */
  follow(force = false) {
    const [from, to] = this.day;
    const w = this.zoom.ms;
    if (this.cursor != null && (force || this.cursor < this.viewFrom || this.cursor > this.viewFrom + w)) {
      this.viewFrom = this.cursor - w / 2;
    }
    this.viewFrom = Math.max(from, Math.min(this.viewFrom, to - w));
    const c = this.canvas;
    if (this.cursor != null) {
      c.setAttribute('aria-valuenow', String(Math.round((this.cursor - from) / 1000)));
      const covered = this.spans.some((s) => this.cursor >= s.start_ms && this.cursor < s.end_ms);
      c.setAttribute('aria-valuetext', `${clock(this.cursor)}, ${covered ? 'recorded' : 'not recorded'}`);
    }
    window.peercam.playback.timeline = { viewFrom: this.viewFrom, viewTo: this.viewFrom + w, day: this.day, cursor: this.cursor };
  }

  msAt(x) {
    const wpx = this.canvas.clientWidth || 1;
    const t = this.viewFrom + (Math.max(0, Math.min(x, wpx)) / wpx) * this.zoom.ms;
    return Math.round(Math.max(this.day[0], Math.min(t, this.day[1] - 1)));
  }

  moveTo(ms, follow = true) {
    this.cursor = Math.max(this.day[0], Math.min(ms, this.day[1] - 1));
    if (follow) this.follow();
    else this.follow(false);
    this.draw();
  }

  key(ev) {
    const st = this.zoom.step * (ev.shiftKey ? 10 : 1);
    const from = this.cursor ?? this.spans[0]?.start_ms ?? this.day[0];
    const moves = {
      ArrowRight: from + st, ArrowUp: from + st, ArrowLeft: from - st, ArrowDown: from - st,
      PageUp: from + 600_000, PageDown: from - 600_000,
      Home: this.spans[0]?.start_ms ?? this.day[0], End: (this.spans.at(-1)?.end_ms ?? this.day[1]) - 1000,
    };
    if (ev.key === 'Enter') {
      ev.preventDefault();
      clearTimeout(this.keyTimer);
      this.keyTimer = null;
      if (this.cursor != null) this.onSeek(this.cursor);
      return;
    }
    if (!(ev.key in moves)) return;
    ev.preventDefault();
    clearTimeout(this.keyTimer);
    this.keyTimer = null;
    this.moveTo(moves[ev.key]);
    this.keyTimer = setTimeout(() => {
      this.keyTimer = null;
      this.onSeek(this.cursor);
    }, 700);
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const css = getComputedStyle(document.documentElement);
    const col = (v) => css.getPropertyValue(v).trim() || '#888';
    const x = (ms) => ((ms - this.viewFrom) / this.zoom.ms) * w;
    const end = this.viewFrom + this.zoom.ms;
    g.clearRect(0, 0, w, hgt);
    g.fillStyle = col('--bg');
    g.fillRect(0, 0, w, hgt);
    // The band: grey where nothing was recorded, the accent colour where something was.
    const bandY = 18;
    const bandH = hgt - 38;
    g.fillStyle = col('--line');
    g.fillRect(0, bandY, w, bandH);
    // One timeline (6.3.2): a colour per nearest source (NVR, SD card, cloud); back-filled
    // spans hatched.
    const srcCol = { sd: col('--ok'), cloud: col('--src-cloud') };
    for (const s of this.spans) {
      if (s.end_ms < this.viewFrom || s.start_ms > end) continue;
      const a = x(s.start_ms);
      const wd = Math.max(2, x(s.end_ms) - a);
      const first = s.sources?.[0] ?? '';
      g.fillStyle = srcCol[first] ?? col('--accent');
      g.fillRect(a, bandY, wd, bandH);
      if (s.backfilled) {
        g.save();
        g.beginPath();
        g.rect(a, bandY, wd, bandH);
        g.clip();
        g.strokeStyle = col('--bg');
        g.lineWidth = 2;
        g.beginPath();
        for (let hx = a - bandH; hx < a + wd; hx += 6) {
          g.moveTo(hx, bandY + bandH);
          g.lineTo(hx + bandH, bandY);
        }
        g.stroke();
        g.restore();
      }
    }
    // The export range.
    if (this.range) {
      g.fillStyle = col('--focus');
      g.globalAlpha = 0.35;
      const a = x(this.range[0]);
      g.fillRect(a, bandY - 4, Math.max(2, x(this.range[1]) - a), bandH + 8);
      g.globalAlpha = 1;
    }
    // Ticks and their times.
    g.fillStyle = col('--muted');
    g.strokeStyle = col('--muted');
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'top';
    const tick = TICKS.find((t) => (t / this.zoom.ms) * w >= 64) ?? TICKS.at(-1);
    const minorEvery = tick / (tick % 3 === 0 && tick >= 10_800_000 ? 3 : 2);
    const first = Math.ceil((this.viewFrom - this.day[0]) / minorEvery) * minorEvery + this.day[0];
    g.lineWidth = 1;
    for (let t = first; t <= end; t += minorEvery) {
      const xx = Math.round(x(t)) + 0.5;
      const major = (t - this.day[0]) % tick === 0;
      g.beginPath();
      g.moveTo(xx, bandY + bandH);
      g.lineTo(xx, bandY + bandH + (major ? 8 : 4));
      g.stroke();
      if (major) {
        const label = clock(t).slice(0, tick % 60_000 === 0 ? 5 : 8);
        const tw = g.measureText(label).width;
        g.fillText(label, Math.min(Math.max(0, xx - tw / 2), w - tw), bandY + bandH + 9);
      }
    }
    // Events: a mark above the band (alarms in red).
    for (const e of this.events) {
      if (e.at_ms < this.viewFrom || e.at_ms > end) continue;
      const xx = x(e.at_ms);
      g.fillStyle = e.kind === 'alarm' || e.kind === 'camera_lost' || e.kind === 'storage_full' ? col('--bad') : col('--muted');
      g.beginPath();
      g.moveTo(xx - 5, 3);
      g.lineTo(xx + 5, 3);
      g.lineTo(xx, bandY - 2);
      g.closePath();
      g.fill();
    }
    // The cursor.
    if (this.cursor != null && this.cursor >= this.viewFrom && this.cursor <= end) {
      const xx = Math.round(x(this.cursor)) + 0.5;
      g.strokeStyle = col('--fg');
      g.lineWidth = 2;
      g.beginPath();
      g.moveTo(xx, 0);
      g.lineTo(xx, bandY + bandH + 2);
      g.stroke();
      g.fillStyle = col('--fg');
      g.beginPath();
      g.arc(xx, bandY + bandH / 2, 5, 0, Math.PI * 2);
      g.fill();
    }
  }
}

route(/^#\/device\/([^/]+)\/recordings(?:\?.*)?$/, async (main, id) => {
  // `?at=<Unix ms>` (e.g. "Play from 5 s before" on the Alarms page): open that day with the
  // cursor there, and play from there when something was recorded at or after it.
  const atParam = new URLSearchParams(location.hash.split('?')[1] ?? '').get('at');
  let startAt = atParam && /^\d+$/.test(atParam) ? Number(atParam) : null;
  const d = await deviceFrame(main, id, 'recordings', 'playback');
  const dev = `/devices/${encodeURIComponent(d.id)}`;
  const hook = { status: null, frames: 0, exports: [], state: 'idle', timeline: null };
  window.peercam.playback = hook;

  // --- Which day and which recorder.
  const dayInput = h('input', { type: 'date', name: 'day', value: isoDay(new Date(startAt ?? Date.now())), required: true, id: 'pb-day' });
  const recorderSelect = h('select', { name: 'recorder', id: 'pb-recorder' });
  const recorderInfo = h('p', { class: 'muted', id: 'pb-recorder-info' });
  const zoomSelect = select({ id: 'pb-zoom', 'aria-label': 'Timeline span' }, ZOOMS.map((z) => [String(z.ms), z.label]), String(startAt != null ? 600_000 : ZOOMS[0].ms));

  // --- The picture and the controls.
  const video = h('video', { playsinline: true, muted: true, autoplay: true, 'aria-label': `Recorded picture of ${d.name}` });
  video.muted = true;
  const countFrames = () => {
    hook.frames++;
    video.requestVideoFrameCallback(countFrames);
  };
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(countFrames);
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite', id: 'pb-status' }, 'Choose a moment on the timeline, or press Play.');
  const position = h('output', { class: 'pb-pos', id: 'pb-pos', 'aria-label': 'Position' }, '--:--:--');
  const playBtn = h('button', { type: 'button', class: 'primary', id: 'pb-play' }, 'Play');
  const backBtn = h('button', { type: 'button', id: 'pb-back', disabled: true }, '◂ Frame back');
  const fwdBtn = h('button', { type: 'button', id: 'pb-fwd', disabled: true }, 'Frame forward ▸');
  const revBtn = h('button', { type: 'button', id: 'pb-reverse', 'aria-pressed': 'false' }, '◂◂ Reverse');
  const speedBtns = SPEEDS.map(([v, label]) => h('button', { type: 'button', class: 'speed', 'aria-pressed': String(v === '1'), dataset: { scale: v } }, label));
  const speeds = h('div', { class: 'speeds', role: 'group', 'aria-label': 'Speed' }, speedBtns);

  // --- Export.
  const fromInput = h('input', { type: 'time', step: '1', name: 'from', id: 'pb-from', required: true });
  const toInput = h('input', { type: 'time', step: '1', name: 'to', id: 'pb-to', required: true });
  const progress = h('progress', { id: 'pb-progress', max: '1', value: '0', hidden: true, 'aria-label': 'Export progress' });
  const exportNote = h('p', { class: 'muted', role: 'status', id: 'pb-export-status' });
  const exportBtn = h('button', { type: 'submit', class: 'primary', id: 'pb-export' }, 'Export MP4');
  const eventsList = h('ul', { class: 'events', 'aria-label': 'Events of the day' });

  // --- Share the range by link (owners only; issue 17 item 9): see shared-clips.js.
  const owner = d.relation === 'owner';
  const clipsCard = sharedClipsCard(id);
  const expirySelect = select({ id: 'pb-share-expiry', 'aria-label': 'Link expires after' }, CLIP_EXPIRIES.map(([v, l]) => [String(v), l]), String(CLIP_EXPIRIES[1][0]));
  const shareBtn = h('button', { type: 'button', id: 'pb-share' }, 'Share clip');
  const shareNote = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite', id: 'pb-share-status' });
  const shareLink = h('input', { type: 'text', readonly: true, id: 'pb-share-link', class: 'clip-link', 'aria-label': 'Shared link' });
  const copyBtn = h('button', { type: 'button', id: 'pb-share-copy' }, 'Copy');
  const shareOut = h('div', { class: 'inline', hidden: true }, shareLink, copyBtn);

  let day = { from: 0, to: 0, list: { spans: [], events: [] } };
  let pb = null;
  let magnitude = '1';
  let reverse = false;
  let state = 'idle';
  let rangeTouched = false;
  let seekTarget = null;

  const scale = () => (reverse ? `-${magnitude}` : magnitude);
  const timeline = new Timeline({ onSeek: (ms) => seek(ms) });

  /** The time inputs' `HH:MM:SS` on the chosen day, as Unix ms. */
  const timeOn = (v) => {
    const [hh, mm, ss] = v.split(':').map(Number);
    const [y, mo, dd] = dayInput.value.split('-').map(Number);
    return new Date(y, mo - 1, dd, hh, mm, ss || 0).getTime();
  };
  const rangeAroundCursor = () => {
    if (timeline.cursor == null) return;
    const a = Math.max(day.from, timeline.cursor - 30_000);
    const b = Math.min(day.to - 1000, timeline.cursor + 30_000);
    fromInput.value = clock(a);
    toInput.value = clock(b);
    timeline.setRange([timeOn(fromInput.value), timeOn(toInput.value)]);
  };
  const onRangeInput = () => {
    rangeTouched = true;
    if (fromInput.value && toInput.value) timeline.setRange([timeOn(fromInput.value), timeOn(toInput.value)]);
  };
  fromInput.addEventListener('input', onRangeInput);
  toInput.addEventListener('input', onRangeInput);

  const showCursor = (ms) => {
    timeline.setCursor(ms);
    position.textContent = clock(ms, true);
    if (!rangeTouched) rangeAroundCursor();
  };

  const setState = (next, message) => {
    const changed = next !== state;
    state = next;
    hook.state = next;
    playBtn.textContent = next === 'playing' ? 'Pause' : 'Play';
    const live = pb?.open;
    backBtn.disabled = !live;
    fwdBtn.disabled = !live;
    if (message) status.textContent = message;
    else if (changed) {
      status.textContent = {
        idle: 'Choose a moment on the timeline, or press Play.',
        connecting: 'Connecting to the recorder…',
        playing: `Playing at ${speedText()}.`,
        paused: 'Paused. Step frame by frame, or press Play.',
        ended: reverse ? 'Reached the start of the recording.' : 'Reached the end of the recording.',
      }[next];
    }
  };
  const speedText = () => `${SPEEDS.find(([v]) => v === magnitude)?.[1] ?? magnitude}${reverse ? ' in reverse' : ''}`;
  const showSpeed = () => {
    for (const b of speedBtns) b.setAttribute('aria-pressed', String(b.dataset.scale === magnitude));
    revBtn.setAttribute('aria-pressed', String(reverse));
  };

  const onStatus = (s) => {
    hook.status = s;
    hook.statusAt = performance.now();
    if (seekTarget) {
      // Statuses sent before the seek arrived still carry the old place.
      if (Math.abs(s.pos_ms - seekTarget.ms) > 5000 && performance.now() < seekTarget.until) return;
      seekTarget = null;
    }
    showCursor(s.pos_ms);
    const st = ['playing', 'paused', 'ended'].includes(s.state) ? s.state : state;
    if (s.error) setState(st, `The recorder refused: ${sentence(s.error)}`);
    else setState(st);
  };

  const stopSession = () => {
    if (!pb) return;
    const p = pb;
    pb = null;
    p.stop();
    video.srcObject = null;
  };

  /** Connects at `atMs` (playing at 1×, then at the chosen speed). */
  const connect = async (atMs) => {
    stopSession();
    setState('connecting');
    const p = new PlaybackSession({
      api,
      deviceId: d.id,
      recorder: recorderSelect.value,
      video,
      forceRelay: new URLSearchParams(location.search).get('relay') === '1',
      onStatus: (s) => { if (pb === p) onStatus(s); },
      onClose: () => {
        if (pb !== p) return;
        pb = null;
        setState('idle', 'The recorder ended the playback. Press Play to start again.');
      },
    });
    pb = p;
    try {
      await p.start(atMs);
    } catch (e) {
      if (pb === p) {
        pb = null;
        p.stop();
        setState('idle', e instanceof ApiError ? messageOf(e) : sentence(e?.message ?? e));
      }
      return false;
    }
    if (pb !== p) return false;
    if (scale() !== '1') p.send({ op: 'play', scale: scale() });
    setState('playing');
    return true;
  };

  /** Plays from `atMs` (or from where it stands) at the chosen speed. */
  const play = async (atMs) => {
    if (!pb?.open) {
      const at = atMs ?? timeline.cursor ?? day.list.spans.at(-1)?.start_ms;
      if (at == null) {
        setState('idle', 'Nothing was recorded on this day. Choose another day or recorder.');
        return;
      }
      await connect(at);
      return;
    }
    const ctl = { op: 'play', scale: scale() };
    if (atMs != null) {
      ctl.at_ms = Math.round(atMs);
      seekTarget = { ms: atMs, until: performance.now() + 1500 };
    }
    pb.send(ctl);
    setState('playing');
  };

  /**
   * The timeline moved: play from there. If it was paused, pause again once the first
   * picture from the new place is painted (a pause holds the picture shown last).
   */
  const seek = async (ms) => {
    position.textContent = clock(ms, true);
    const wasPaused = state === 'paused';
    const framesBefore = hook.frames;
    await play(ms);
    if (!wasPaused || !pb?.open) return;
    const p = pb;
    const until = performance.now() + 2000;
    while (performance.now() < until && pb === p) {
      await new Promise((r) => setTimeout(r, 40));
      if (hook.frames > framesBefore && !seekTarget) break;
    }
    if (pb === p && state === 'playing') {
      p.send({ op: 'pause' });
      setState('paused');
    }
  };

  playBtn.addEventListener('click', () => {
    if (state === 'playing' && pb?.open) {
      pb.send({ op: 'pause' });
      setState('paused');
    } else {
      play();
    }
  });
  const step = (forward) => {
    if (!pb?.open) return;
    if (state === 'playing') pb.send({ op: 'pause' });
    pb.send({ op: 'step', forward });
    setState('paused');
  };
  backBtn.addEventListener('click', () => step(false));
  fwdBtn.addEventListener('click', () => step(true));
  for (const b of speedBtns) {
    b.addEventListener('click', () => {
      magnitude = b.dataset.scale;
      showSpeed();
      play();
    });
  }
  revBtn.addEventListener('click', () => {
    reverse = !reverse;
    showSpeed();
    if (pb?.open && state !== 'paused') play();
    else status.textContent = reverse ? 'Reverse: Play goes backwards.' : 'Forward: Play goes forwards.';
  });
  zoomSelect.addEventListener('change', () => timeline.setZoom(Number(zoomSelect.value)));

  const exportForm = form({ class: 'inline pb-export', 'aria-label': 'Export a range' }, async (f) => {
    const a = timeOn(f.from.value);
    const b = timeOn(f.to.value);
    if (!(b > a)) {
      throw new ApiError(400, 'invalid', 'The end of the range must be after its start.', [{ field: 'to', message: 'after the start' }]);
    }
    if (!pb?.open && !(await connect(a))) throw new ApiError(0, 'offline', status.textContent);
    progress.hidden = false;
    progress.value = 0;
    exportNote.textContent = `Asking the recorder for ${clock(a)} to ${clock(b)}…`;
    const started = performance.now();
    const out = await pb.export(a, b, (got, total) => {
      if (total) {
        progress.max = total;
        progress.value = got;
        exportNote.textContent = `Receiving ${fmtBytes(got)} of ${fmtBytes(total)} (${Math.floor((100 * got) / total)} %)…`;
      }
    }).catch((e) => {
      progress.hidden = true;
      exportNote.textContent = '';
      throw new ApiError(0, 'export', sentence(e?.message ?? e));
    });
    download(out.blob, out.name);
    hook.exports.push({ name: out.name, bytes: out.bytes, frames: out.frames, ms: Math.round(performance.now() - started) });
    exportNote.textContent = `Saved ${out.name}: ${fmtBytes(out.bytes)}${out.frames != null ? `, ${out.frames} frames` : ''}.`;
  },
  field('From', fromInput), field('To', toInput),
  h('button', { type: 'button', onclick: () => { rangeTouched = false; rangeAroundCursor(); } }, 'One minute around the cursor'),
  exportBtn);
  fromInput.dataset.field = 'from';
  toInput.dataset.field = 'to';

  /** Exports the range as for "Export MP4", then makes the link and uploads the clip. */
  const share = async () => {
    shareOut.hidden = true;
    shareNote.classList.remove('error');
    shareNote.setAttribute('role', 'status');
    const fail = (text) => {
      shareNote.textContent = text;
      shareNote.classList.add('error');
      shareNote.setAttribute('role', 'alert');
      if (hook.share) hook.share.error = text;
    };
    hook.share = { state: 'working' };
    if (!fromInput.value || !toInput.value) return fail('Choose the range to share first (From and To).');
    const a = timeOn(fromInput.value);
    const b = timeOn(toInput.value);
    if (!(b > a)) return fail('The end of the range must be after its start.');
    if (b - a > CLIP_MAX_MS) {
      return fail(`A shared clip is at most 15 minutes long; this range is ${Math.ceil((b - a) / 60_000)} minutes. Choose a shorter range.`);
    }
    shareBtn.disabled = true;
    exportBtn.disabled = true;
    try {
      if (!pb?.open && !(await connect(a))) throw new Error(status.textContent);
      progress.hidden = false;
      progress.max = 1;
      progress.value = 0;
      shareNote.textContent = `Asking the recorder for ${clock(a)} to ${clock(b)}…`;
      const out = await pb.export(a, b, (got, total) => {
        if (total) {
          progress.max = total;
          progress.value = got;
          shareNote.textContent = `Exporting: ${fmtBytes(got)} of ${fmtBytes(total)}…`;
        }
      });
      shareNote.textContent = 'Making the link…';
      const clip = await shareClip({
        camera: d.id,
        recorder: recorderSelect.value || null,
        fromMs: a,
        toMs: b,
        expiresInS: Number(expirySelect.value),
        blob: out.blob,
        onProgress: (sent, total) => {
          progress.max = total || 1;
          progress.value = sent;
          shareNote.textContent = `Uploading to cloud storage: ${fmtBytes(sent)} of ${fmtBytes(total)}…`;
        },
      });
      shareLink.value = clip.link;
      shareOut.hidden = false;
      shareNote.textContent = `Anyone with this link can watch and download the clip until ${new Date(clip.expires_at * 1000).toLocaleString()}. Revoke it under Shared clips.`;
      hook.share = { state: 'done', id: clip.id, link: clip.link, bytes: out.bytes };
      clipsCard.reload?.();
    } catch (e) {
      fail(e instanceof ApiError ? messageOf(e) : sentence(e?.message ?? e));
      if (hook.share) hook.share.state = 'failed';
      // A failed upload revoked the link it made: the card shows it so.
      clipsCard.reload?.();
    } finally {
      progress.hidden = true;
      shareBtn.disabled = false;
      exportBtn.disabled = false;
    }
  };
  shareBtn.addEventListener('click', share);
  copyBtn.addEventListener('click', async () => {
    shareLink.select();
    try {
      await navigator.clipboard.writeText(shareLink.value);
      toast('Link copied.');
    } catch {
      toast('Press Ctrl+C (or ⌘C) to copy the selected link.');
    }
  });

  // --- Loading a day.
  const load = async () => {
    stopSession();
    setState('idle');
    const [y, mo, dd] = dayInput.value.split('-').map(Number);
    const from = new Date(y, mo - 1, dd).getTime();
    const to = new Date(y, mo - 1, dd + 1).getTime();
    const q = new URLSearchParams({ from: rfc3339(from), to: rfc3339(to) });
    if (recorderSelect.value) q.set('recorder', recorderSelect.value);
    let list;
    try {
      list = await api('GET', `${dev}/recordings?${q}`);
    } catch (e) {
      list = { spans: [], events: [] };
      status.textContent = messageOf(e);
    }
    day = { from, to, list };
    const last = list.spans.at(-1);
    const asked = startAt != null && startAt >= from && startAt < to ? startAt : null;
    startAt = null;
    const cursor = asked ?? (last ? Math.max(last.start_ms, last.end_ms - 60_000) : null);
    timeline.cursor = cursor;
    timeline.setDay(from, to, list.spans, list.events);
    timeline.setZoom(Number(zoomSelect.value));
    if (cursor != null) {
      position.textContent = clock(cursor, true);
      rangeTouched = false;
      rangeAroundCursor();
    } else {
      position.textContent = '--:--:--';
      timeline.setRange(null);
    }
    const total = list.spans.reduce((n, s) => n + (s.end_ms - s.start_ms), 0);
    summary.textContent = list.spans.length
      ? `${list.spans.length} recorded ${list.spans.length === 1 ? 'stretch' : 'stretches'}, ${total < 60_000 ? `${Math.round(total / 1000)} s` : `${Math.round(total / 60_000)} min`} in all, ${fmtBytes(list.spans.reduce((n, s) => n + s.bytes, 0))}; ${list.events.length} events.`
      : 'Nothing recorded on this day.';
    eventsList.replaceChildren(...list.events.slice(-50).map((e) => h('li', null,
      h('button', { type: 'button', class: 'link', onclick: () => { timeline.moveTo(e.at_ms); seek(e.at_ms); } },
        `${clock(e.at_ms)} ${EVENT_LABEL[e.kind] ?? e.kind}${e.detail ? `: ${e.detail}` : ''}`))));
    if (!list.events.length) eventsList.append(h('li', { class: 'muted' }, 'No events on this day.'));
    if (asked != null) {
      // Play only where something was recorded; else the cursor shows the moment.
      if (list.spans.some((s) => s.end_ms > asked)) play(asked);
      else setState('idle', `Nothing was recorded at or after ${clock(asked)} on this day.`);
    }
  };
  const summary = h('p', { class: 'muted', id: 'pb-summary' });

  /** The recorders the user can choose: attached NVRs (asked one by one), then the SD card. */
  const loadRecorders = async () => {
    const opts = [];
    const devices = await api('GET', '/devices').catch(() => []);
    for (const n of devices.filter((x) => x.kind === 'nvr')) {
      try {
        const st = await api('GET', `${dev}/recording?recorder=${encodeURIComponent(n.id)}`);
        opts.push([n.id, `${n.name} (NVR)`, st]);
      } catch {
        // Not attached to this camera, or offline: not offered.
      }
    }
    if (!opts.length) opts.push(['', 'Default recorder', null]);
    opts.push(['sd', 'SD card in the camera', null]);
    recorderSelect.replaceChildren(...opts.map(([v, l]) => h('option', { value: v }, l)));
    recorderSelect.value = opts[0][0];
    const describe = async () => {
      let st = opts.find((o) => o[0] === recorderSelect.value)?.[2];
      if (!st) {
        const q = recorderSelect.value ? `?recorder=${encodeURIComponent(recorderSelect.value)}` : '';
        st = await api('GET', `${dev}/recording${q}`).catch(() => null);
      }
      recorderInfo.textContent = st
        ? `${st.recording ? 'Recording now' : 'Not recording now'} (${st.strategy?.mode?.kind ?? 'off'}); ${fmtBytes(st.used_bytes)} stored${st.oldest_ms ? ` since ${new Date(st.oldest_ms).toLocaleString()}` : ''}.${st.last_error ? ` Last problem: ${st.last_error}.` : ''}`
        : '';
    };
    recorderSelect.addEventListener('change', () => { describe(); load(); });
    await describe();
  };

  dayInput.addEventListener('change', () => { if (dayInput.value) load(); });
  onLeave(stopSession);
  const leaving = new AbortController();
  window.addEventListener('pagehide', stopSession, { signal: leaving.signal });
  onLeave(() => leaving.abort());

  main.append(
    h('div', { class: 'pb-pick' }, field('Day', dayInput), field('Recorder', recorderSelect), recorderInfo),
    h('div', { class: 'pb-layout' },
      h('section', { class: 'live pb-main', 'aria-label': 'Recorded picture' },
        h('div', { class: 'video-wrap' }, video),
        h('div', { class: 'live-bar pb-bar', role: 'group', 'aria-label': 'Playback' }, playBtn, backBtn, fwdBtn, revBtn, position),
        speeds,
        status,
        h('section', { class: 'pb-timeline', 'aria-labelledby': 'timeline-h' },
          h('div', { class: 'heading' }, h('h2', { id: 'timeline-h' }, 'Timeline'), zoomSelect),
          timeline.canvas,
          h('p', { class: 'legend muted' },
            h('span', { class: 'key rec' }), ' recorded (NVR) ', h('span', { class: 'key rec-sd' }), ' SD card ',
            h('span', { class: 'key rec-cloud' }), ' cloud ', h('span', { class: 'key ev' }), ' event ',
            h('span', { class: 'key sel' }), ' export range · click or drag to play from a moment; arrow keys move'),
          summary)),
      h('div', { class: 'pb-side' },
        h('section', { class: 'card', 'aria-labelledby': 'export-h' },
          h('h2', { id: 'export-h' }, 'Export'),
          h('p', { class: 'muted' }, 'Save a stretch of the recording as an MP4 file.'),
          exportForm, progress, exportNote,
          owner && h('div', { class: 'pb-share', role: 'group', 'aria-label': 'Share by link' },
            h('p', { class: 'muted' }, 'Or share it by link (at most 15 minutes): anyone with the link can watch it, without an account, until it expires or you revoke it.'),
            h('div', { class: 'inline' }, field('Link expires after', expirySelect), shareBtn),
            shareNote, shareOut)),
        h('section', { class: 'card', 'aria-labelledby': 'events-h' },
          h('h2', { id: 'events-h' }, 'Events'), eventsList),
        cloudPlanCard(),
        clipsCard)),
  );
  await loadRecorders();
  await load();
});

// ---------------------------------------------------------------------------------------------
// The camera's alarm strategy (8.8): see alarm-settings.js

route(/^#\/device\/([^/]+)\/alarms$/, (main, id) => strategyView(main, id));

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
    twoFactorCard(),
    u.role === 'owner' && subaccountsPanel(),
    u.role !== 'operator' && usageCard(),
    u.role !== 'operator' && cloudPlanCard(),
    u.role !== 'operator' && h('p', null, h('a', { href: '#/alarms/settings' }, 'Alarm messages and notifications')),
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
// Operator portal (6.2, 6.1.14): see operator.js; one tab per function, `#/operator/<tab>`

route(/^#\/operator(?:\/([a-z-]+))?(?:\?.*)?$/, (main, tab) => operatorView(main, tab || 'overview', onLeave));

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

window.peercam = { version: VERSION, lastPlay: null, update: null, playback: null };
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
followAlarms();
reportUpdated();
checkUpdate();
setInterval(checkUpdate, 30 * 60 * 1000);
