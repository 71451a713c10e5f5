// Alarm settings in the web client:
// - a camera's alarm strategy (H.626.4 8.8 steps 1-4), #/device/{id}/alarms: armed, sources,
//   weekly schedule, sensitivity, cooldown, linkage, and motion zones drawn on the camera's
//   current picture; PUT /api/v1/devices/{id}/alarm-strategy sends it to the camera (or keeps
//   it for the camera's return when it is offline);
// - the user's SMS templates and notification channels per alarm kind (6.1.9),
//   #/alarms/settings, with a live preview (rendered text, encoding, SMS segments).

import { KIND_LABEL } from './alarm-stream.js';
import { api, apiBlob, check, deviceFrame, field, form, h, messageOf, toast } from './app.js';

/** The sources a strategy may arm, in the order shown. */
const SOURCES = [
  ['motion', 'Motion in the picture'],
  ['input', 'Alarm inputs (door contacts, sensors)'],
  ['video_loss', 'Picture lost'],
  ['tamper', 'Camera covered or turned away'],
  ['onvif', 'Events of a wrapped ONVIF camera'],
];
const LINKAGE = [
  ['record', 'Record (the recorders keep the minutes around the alarm)'],
  ['snapshot', 'Keep a snapshot with the alarm'],
  ['sms', 'Send an SMS'],
  ['push', 'Send a notification to subscribed browsers'],
  ['output', 'Switch the camera’s alarm output (relay) on'],
];
const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const DAY_NAMES = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
/** Most motion zones (the model's MAX_ZONES). */
const MAX_ZONES = 8;
/** Smallest zone drawn with the pointer, thousandths of the picture. */
const MIN_DRAWN = 15;

const pad2 = (n) => String(n).padStart(2, '0');
const hhmm = (min) => `${pad2(Math.floor(min / 60) % 24)}:${pad2(min % 60)}`;
/** `HH:MM` -> minutes of the day; an end of 00:00 is midnight at the end of the day. */
const minutes = (v, end) => {
  const [hh, mm] = v.split(':').map(Number);
  const m = hh * 60 + mm;
  return end && m === 0 ? 1440 : m;
};
const fmtOffset = (min) => `UTC${min < 0 ? '−' : '+'}${pad2(Math.floor(Math.abs(min) / 60))}:${pad2(Math.abs(min) % 60)}`;
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

// ---------------------------------------------------------------------------------------------
// Motion zones

/**
 * Motion zones over the camera's picture: rectangles in thousandths of the picture from its
 * top left (the model's `Zone`). Drag on the picture to draw one; click one to select it;
 * with the picture focused, arrow keys move the selected zone (Shift+arrows resize it),
 * Delete removes it and N adds one in the middle. Each zone is also listed with its edges in
 * per cent, editable, and a Remove button.
 */
class ZoneEditor {
  constructor(zones) {
    this.zones = zones.map((z) => ({ ...z }));
    this.selected = this.zones.length ? 0 : -1;
    this.drag = null;
    this.img = h('img', { class: 'zone-picture', alt: '', decoding: 'async' });
    this.note = h('p', { class: 'muted', id: 'zone-note' }, 'Loading the camera’s picture…');
    this.canvas = h('canvas', {
      class: 'zone-canvas', id: 'zone-canvas', tabindex: '0', role: 'application',
      'aria-label': 'Motion zones on the camera’s picture. Drag to draw a zone. Keys: N adds a zone, arrows move the selected zone, Shift and arrows resize it, Delete removes it.',
      'aria-describedby': 'zone-note',
    });
    this.list = h('ol', { class: 'zones', id: 'zone-list', 'aria-label': 'Motion zones' });
    this.status = h('p', { class: 'muted', role: 'status', id: 'zone-status' });
    this.el = h('div', { class: 'zone-editor' },
      h('div', { class: 'zone-stage' }, this.img, this.canvas),
      this.note,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => this.add({ x: 350, y: 350, w: 300, h: 300 }) }, 'Add a zone'),
        h('button', { type: 'button', id: 'zone-clear', onclick: () => this.clear() }, 'Remove all zones')),
      this.status,
      this.list);
    this.img.addEventListener('error', () => {
      this.img.hidden = true;
      this.note.textContent = 'No picture from the camera now: the zones are drawn on a grid of the whole picture.';
    });
    this.img.addEventListener('load', () => {
      this.note.textContent = 'The camera’s current picture. Motion counts only inside the zones; with no zone, anywhere.';
    });
    const c = this.canvas;
    c.addEventListener('pointerdown', (ev) => this.down(ev));
    c.addEventListener('pointermove', (ev) => this.move(ev));
    c.addEventListener('pointerup', (ev) => this.up(ev));
    c.addEventListener('pointercancel', () => { this.drag = null; this.draw(); });
    c.addEventListener('keydown', (ev) => this.key(ev));
    new ResizeObserver(() => this.draw()).observe(c);
    this.renderList();
  }

  /** Shows `blob` (the camera's snapshot) under the zones. */
  picture(blob) {
    this.img.hidden = false;
    this.img.src = URL.createObjectURL(blob);
  }

  noPicture(why) {
    this.img.hidden = true;
    this.note.textContent = `No picture from the camera now (${why}): the zones are drawn on a grid of the whole picture.`;
  }

  /** The pointer's place, thousandths of the picture. */
  at(ev) {
    const r = this.canvas.getBoundingClientRect();
    return {
      x: clamp(Math.round(((ev.clientX - r.left) / (r.width || 1)) * 1000), 0, 1000),
      y: clamp(Math.round(((ev.clientY - r.top) / (r.height || 1)) * 1000), 0, 1000),
    };
  }

  down(ev) {
    if (ev.button !== 0) return;
    this.canvas.setPointerCapture?.(ev.pointerId);
    this.canvas.focus({ preventScroll: true });
    const p = this.at(ev);
    this.drag = { from: p, to: p };
    ev.preventDefault();
  }

  move(ev) {
    if (!this.drag) return;
    this.drag.to = this.at(ev);
    this.draw();
  }

  up(ev) {
    if (!this.drag) return;
    const { from } = this.drag;
    const to = this.at(ev);
    this.drag = null;
    const rect = {
      x: Math.min(from.x, to.x), y: Math.min(from.y, to.y),
      w: Math.abs(to.x - from.x), h: Math.abs(to.y - from.y),
    };
    if (rect.w >= MIN_DRAWN && rect.h >= MIN_DRAWN) {
      this.add(rect);
      return;
    }
    // A click: select the zone under the pointer (the topmost, i.e. the last drawn).
    const hit = this.zones.map((z, i) => [z, i]).reverse()
      .find(([z]) => to.x >= z.x && to.x < z.x + z.w && to.y >= z.y && to.y < z.y + z.h);
    this.select(hit ? hit[1] : -1);
  }

  key(ev) {
    const z = this.zones[this.selected];
    const step = 10;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
    if (ev.key === 'n' || ev.key === 'N' || ev.key === '+') {
      this.add({ x: 350, y: 350, w: 300, h: 300 });
    } else if ((ev.key === 'Delete' || ev.key === 'Backspace') && z) {
      this.remove(this.selected);
    } else if (/^[1-8]$/.test(ev.key) && this.zones[Number(ev.key) - 1]) {
      this.select(Number(ev.key) - 1);
    } else if (d && z) {
      if (ev.shiftKey) {
        z.w = clamp(z.w + d[0], MIN_DRAWN, 1000 - z.x);
        z.h = clamp(z.h + d[1], MIN_DRAWN, 1000 - z.y);
      } else {
        z.x = clamp(z.x + d[0], 0, 1000 - z.w);
        z.y = clamp(z.y + d[1], 0, 1000 - z.h);
      }
      this.renderList();
      this.draw();
      this.say(`Zone ${this.selected + 1}: ${describe(z)}.`);
    } else {
      return;
    }
    ev.preventDefault();
  }

  add(rect) {
    if (this.zones.length >= MAX_ZONES) {
      this.say(`At most ${MAX_ZONES} zones: remove one first.`);
      return;
    }
    const z = {
      x: clamp(rect.x, 0, 999), y: clamp(rect.y, 0, 999), w: rect.w, h: rect.h,
    };
    z.w = clamp(z.w, 1, 1000 - z.x);
    z.h = clamp(z.h, 1, 1000 - z.y);
    this.zones.push(z);
    this.selected = this.zones.length - 1;
    this.renderList();
    this.draw();
    this.say(`Zone ${this.zones.length} added: ${describe(z)}.`);
  }

  remove(i) {
    this.zones.splice(i, 1);
    this.selected = Math.min(this.selected, this.zones.length - 1);
    this.renderList();
    this.draw();
    this.say(this.zones.length ? `Zone removed; ${this.zones.length} left.` : 'No zones: motion counts anywhere in the picture.');
  }

  clear() {
    this.zones = [];
    this.selected = -1;
    this.renderList();
    this.draw();
    this.say('No zones: motion counts anywhere in the picture.');
  }

  select(i) {
    this.selected = i;
    for (const [j, li] of [...this.list.children].entries()) li.classList.toggle('selected', j === i);
    this.draw();
  }

  say(text) {
    this.status.textContent = text;
  }

  /** The zones with their edges in per cent (editable) and a Remove button each. */
  renderList() {
    const pct = (i, key, label, z) => {
      const input = h('input', {
        type: 'number', min: '0', max: '100', step: '0.1', inputmode: 'decimal',
        value: String(z[key] / 10), dataset: { field: `zones[${i}].${key}` },
      });
      input.addEventListener('input', () => {
        const v = Number(input.value);
        if (input.value === '' || !Number.isFinite(v)) return;
        z[key] = Math.round(v * 10);
        this.draw();
      });
      return field(label, input);
    };
    this.list.replaceChildren(...this.zones.map((z, i) => h('li', { class: i === this.selected ? 'zone selected' : 'zone', dataset: { zone: String(i) } },
      h('strong', null, `Zone ${i + 1}`),
      h('div', { class: 'zone-fields' },
        pct(i, 'x', 'Left %', z), pct(i, 'y', 'Top %', z), pct(i, 'w', 'Width %', z), pct(i, 'h', 'Height %', z)),
      h('button', { type: 'button', 'aria-label': `Remove zone ${i + 1}`, onclick: () => this.remove(i) }, 'Remove'))));
    if (!this.zones.length) this.list.append(h('li', { class: 'muted' }, 'No zones: motion anywhere in the picture counts.'));
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const hh = c.clientHeight;
    if (!w || !hh) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hh * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hh * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hh);
    const X = (v) => (v / 1000) * w;
    const Y = (v) => (v / 1000) * hh;
    // A grid of tenths, to place zones when there is no picture.
    g.strokeStyle = 'rgba(255,255,255,0.25)';
    g.lineWidth = 1;
    for (let i = 1; i < 10; i++) {
      g.beginPath();
      g.moveTo(Math.round(X(i * 100)) + 0.5, 0);
      g.lineTo(Math.round(X(i * 100)) + 0.5, hh);
      g.moveTo(0, Math.round(Y(i * 100)) + 0.5);
      g.lineTo(w, Math.round(Y(i * 100)) + 0.5);
      g.stroke();
    }
    g.font = 'bold 14px system-ui, sans-serif';
    g.textBaseline = 'top';
    for (const [i, z] of this.zones.entries()) {
      const sel = i === this.selected;
      g.fillStyle = sel ? 'rgba(255, 170, 0, 0.35)' : 'rgba(230, 40, 40, 0.28)';
      g.fillRect(X(z.x), Y(z.y), X(z.w), Y(z.h));
      g.strokeStyle = sel ? '#ffb000' : '#ff4040';
      g.lineWidth = sel ? 3 : 2;
      g.strokeRect(X(z.x), Y(z.y), X(z.w), Y(z.h));
      g.fillStyle = '#fff';
      g.fillText(String(i + 1), X(z.x) + 4, Y(z.y) + 3);
    }
    if (this.drag) {
      const { from, to } = this.drag;
      g.setLineDash([6, 4]);
      g.strokeStyle = '#fff';
      g.lineWidth = 2;
      g.strokeRect(X(Math.min(from.x, to.x)), Y(Math.min(from.y, to.y)), X(Math.abs(to.x - from.x)), Y(Math.abs(to.y - from.y)));
      g.setLineDash([]);
    }
  }
}

const describe = (z) => `from ${z.x / 10} % to ${(z.x + z.w) / 10} % across, ${z.y / 10} % to ${(z.y + z.h) / 10} % down`;

// ---------------------------------------------------------------------------------------------
// Weekly schedule

/** The schedule's time windows (days and a time of day each), editable; `read()` gives the model's windows. */
function scheduleEditor(windows) {
  const box = h('div', { class: 'schedule', id: 'schedule' });
  const rows = h('ol', { class: 'windows' });
  const empty = h('p', { class: 'muted' }, 'No time windows: while switched on, the camera raises alarms at any time.');
  const renumber = () => {
    [...rows.children].forEach((li, i) => {
      li.querySelector('legend').textContent = `Time window ${i + 1}`;
      li.querySelector('fieldset').dataset.field = `schedule[${i}].days`;
      li.querySelector('input[name=start]').dataset.field = `schedule[${i}].start_min`;
      li.querySelector('input[name=end]').dataset.field = `schedule[${i}].end_min`;
    });
    empty.hidden = rows.children.length > 0;
  };
  const addRow = (win) => {
    const days = h('fieldset', { class: 'days', tabindex: '-1', id: `win-${Math.random().toString(36).slice(2)}` },
      h('legend', null, 'Time window'),
      DAYS.map((d, i) => {
        const c = check(d, { name: 'day', value: String(i), checked: (win.days & (1 << i)) !== 0 });
        c.querySelector('input').setAttribute('aria-label', DAY_NAMES[i]);
        return c;
      }));
    days.append(h('small', { class: 'field-error', id: `${days.id}-err` }));
    const start = h('input', { type: 'time', name: 'start', required: true, value: hhmm(win.start_min) });
    const end = h('input', { type: 'time', name: 'end', required: true, value: hhmm(win.end_min % 1440) });
    const li = h('li', null, days,
      h('div', { class: 'grid' }, field('From', start), field('Until', end, '00:00 is midnight at the end of the day.')),
      h('button', { type: 'button', onclick: () => { li.remove(); renumber(); } }, 'Remove this window'));
    rows.append(li);
    renumber();
  };
  for (const w of windows) addRow(w);
  box.append(empty, rows,
    h('button', { type: 'button', id: 'schedule-add', onclick: () => addRow({ days: 127, start_min: 8 * 60, end_min: 18 * 60 }) }, 'Add a time window'));
  renumber();
  box.read = () => [...rows.children].map((li) => ({
    days: [...li.querySelectorAll('input[name=day]')].reduce((m, c) => (c.checked ? m | (1 << Number(c.value)) : m), 0),
    start_min: minutes(li.querySelector('input[name=start]').value || '00:00', false),
    end_min: minutes(li.querySelector('input[name=end]').value || '00:00', true),
  }));
  return box;
}

// ---------------------------------------------------------------------------------------------
// The strategy page

/** What the page tells about where the strategy stands. */
function strategyNote(st) {
  if (!st.revision) return 'No alarm strategy saved yet: the defaults are shown.';
  return st.applied
    ? `Revision ${st.revision} is saved and the camera applies it.`
    : `Revision ${st.revision} is saved; the camera has not confirmed it yet (it is sent again when the camera is back online).`;
}

/** #/device/{id}/alarms: the camera's alarm strategy. */
export async function strategyView(main, id) {
  const d = await deviceFrame(main, id, 'alarms', 'alarms');
  const path = `/devices/${encodeURIComponent(d.id)}/alarm-strategy`;
  const st = await api('GET', path);
  const s = st.strategy;
  window.peercam.strategy = { saved: null };

  const status = h('p', { class: 'status', role: 'status', id: 'strategy-status' }, strategyNote(st));
  const armed = check('Armed: the camera raises alarms', { name: 'armed', checked: s.armed, dataset: { field: 'armed' } });
  const sources = h('fieldset', { class: 'checks', id: 'sources', tabindex: '-1', dataset: { field: 'sources' } },
    h('legend', null, 'What raises an alarm'),
    SOURCES.map(([k, label]) => check(label, { name: 'source', value: k, checked: s.sources.includes(k) })),
    h('small', { class: 'field-error', id: 'sources-err' }));
  const sensitivity = h('input', { type: 'range', name: 'sensitivity', min: '1', max: '100', step: '1', value: String(s.sensitivity), dataset: { field: 'sensitivity' } });
  const sensOut = h('output', { for: 'sensitivity' }, String(s.sensitivity));
  sensitivity.addEventListener('input', () => {
    sensOut.textContent = sensitivity.value;
    sensitivity.setAttribute('aria-valuetext', `${sensitivity.value} of 100`);
  });
  const cooldown = h('input', { type: 'number', name: 'cooldown_s', min: '0', max: '3600', step: '1', required: true, value: String(s.cooldown_s), dataset: { field: 'cooldown_s' } });
  const linkage = h('fieldset', { class: 'checks', id: 'linkage', tabindex: '-1', dataset: { field: 'linkage' } },
    h('legend', null, 'When an alarm is raised'),
    LINKAGE.map(([k, label]) => check(label, { name: `linkage.${k}`, checked: !!s.linkage[k] })),
    h('small', { class: 'field-error', id: 'linkage-err' }));
  const outputS = h('input', { type: 'number', name: 'output_s', min: '0', max: '3600', step: '1', value: String(s.linkage.output_s ?? 0), dataset: { field: 'linkage.output_s' } });
  const schedule = scheduleEditor(s.schedule);
  const here = -new Date().getTimezoneOffset();
  const zones = new ZoneEditor(s.zones);

  const f = form({ class: 'strategy', 'aria-label': 'Alarm strategy' }, async () => {
    const keep = s.sources.filter((k) => !SOURCES.some(([x]) => x === k));
    const body = {
      ...s,
      armed: armed.querySelector('input').checked,
      sources: [...sources.querySelectorAll('input[name=source]:checked')].map((c) => c.value).concat(keep),
      schedule: schedule.read(),
      utc_offset_min: here,
      zones: zones.zones.map((z) => ({ x: z.x, y: z.y, w: z.w, h: z.h })),
      sensitivity: Number(sensitivity.value),
      cooldown_s: Number(cooldown.value),
      linkage: {
        ...Object.fromEntries(LINKAGE.map(([k]) => [k, linkage.querySelector(`input[name="linkage.${k}"]`).checked])),
        output_s: Number(outputS.value || 0),
      },
    };
    const saved = await api('PUT', path, body);
    window.peercam.strategy.saved = saved;
    Object.assign(s, saved.strategy);
    status.textContent = saved.applied
      ? `Saved (revision ${saved.revision}) and sent to the camera, which applies it now.`
      : `Saved (revision ${saved.revision}). The camera is offline: it gets the strategy when it is back online.`;
    status.dataset.applied = String(saved.applied);
    toast(saved.applied ? 'Alarm strategy sent to the camera.' : 'Alarm strategy saved; pending until the camera is online.');
  },
  h('section', { class: 'card', 'aria-labelledby': 'arm-h' }, h('h2', { id: 'arm-h' }, 'Arming'),
    armed, sources),
  h('section', { class: 'card', 'aria-labelledby': 'zones-h' }, h('h2', { id: 'zones-h' }, 'Motion zones'),
    h('p', { class: 'muted' }, 'Drag on the picture to draw a zone (at most 8). Motion outside the zones is ignored.'),
    zones.el),
  h('section', { class: 'card', 'aria-labelledby': 'sched-h' }, h('h2', { id: 'sched-h' }, 'When'),
    h('p', { class: 'muted' }, `Times are in this device’s time zone (${fmtOffset(here)}).`,
      s.schedule.length && s.utc_offset_min !== here ? ` They were saved in ${fmtOffset(s.utc_offset_min)}; saving keeps the times as shown, in ${fmtOffset(here)}.` : ''),
    schedule),
  h('section', { class: 'card', 'aria-labelledby': 'tune-h' }, h('h2', { id: 'tune-h' }, 'Sensitivity and repeats'),
    h('div', { class: 'field' }, h('label', { for: 'sensitivity' }, 'Sensitivity (1: only large changes, 100: the slightest) ', sensOut), sensitivity,
      h('small', { class: 'field-error', id: 'sensitivity-err' })),
    field('Quiet time after an alarm, seconds', cooldown, 'The same source raises no other alarm for this long (0 to 3600).')),
  h('section', { class: 'card', 'aria-labelledby': 'link-h' }, h('h2', { id: 'link-h' }, 'Actions'),
    linkage,
    field('Alarm output on for, seconds', outputS, '0 keeps it on until the alarm is reset.')),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'strategy-save' }, 'Save and send to the camera')));
  sensitivity.id = 'sensitivity';
  sensitivity.setAttribute('aria-describedby', 'sensitivity-err');
  main.append(status, f);
  zones.draw();

  // The camera's current picture under the zones (the thumbnails' endpoint, 6.1.12).
  if (d.online) {
    apiBlob(`/devices/${encodeURIComponent(d.id)}/snapshot?max_width=640`)
      .then((blob) => zones.picture(blob))
      .catch((e) => zones.noPicture(messageOf(e).replace(/\.$/, '')));
  } else {
    zones.noPicture('the camera is offline');
  }
}

// ---------------------------------------------------------------------------------------------
// Templates and notifications (6.1.9)

const PLACEHOLDERS = [
  ['{camera}', 'the camera’s name'],
  ['{time}', 'when it happened, in your time zone'],
  ['{kind}', 'what happened (motion, input, …)'],
  ['{detail}', 'more about it (the input, the zone, the event)'],
  ['{link}', 'a link that opens the alarm in the app'],
];
/** Wait after the last keystroke before asking for a preview, ms. */
const PREVIEW_DELAY_MS = 350;

const kindOrder = (kinds) => {
  const known = Object.keys(KIND_LABEL);
  return [...kinds].sort((a, b) => (known.indexOf(a) >>> 0) - (known.indexOf(b) >>> 0));
};

function costText(p) {
  const enc = p.encoding === 'gsm7' ? 'GSM-7' : p.encoding === 'ucs2' ? 'UCS-2 (Unicode)' : p.encoding;
  return `${p.units} characters · ${enc} · ${p.segments} SMS ${p.segments === 1 ? 'segment' : 'segments'}`;
}

/** One template's text box with its live preview. */
function templateField(kind, text) {
  const area = h('textarea', { name: kind, rows: '2', spellcheck: 'true', dataset: { field: `templates.${kind}` } });
  area.value = text;
  const wrap = field(KIND_LABEL[kind] ?? kind, area);
  const preview = h('div', { class: 'preview', id: `${area.id}-preview`, 'aria-live': 'polite', dataset: { kind } },
    h('p', { class: 'preview-text' }), h('p', { class: 'muted preview-cost' }));
  area.setAttribute('aria-describedby', `${area.getAttribute('aria-describedby')} ${preview.id}`);
  wrap.classList.add('template');
  wrap.append(preview);
  const err = wrap.querySelector('.field-error');
  let timer = null;
  let asked = 0;
  const ask = async () => {
    const mine = ++asked;
    try {
      const p = await api('POST', '/me/alarm-templates/preview', { kind, template: area.value });
      if (mine !== asked) return;
      area.removeAttribute('aria-invalid');
      err.textContent = '';
      preview.hidden = false;
      preview.dataset.segments = String(p.segments);
      preview.dataset.encoding = p.encoding;
      preview.querySelector('.preview-text').textContent = p.text;
      preview.querySelector('.preview-cost').textContent = costText(p);
    } catch (e) {
      if (mine !== asked) return;
      const fe = e.fields?.find((x) => x.field === 'template');
      area.setAttribute('aria-invalid', 'true');
      err.textContent = fe ? fe.message : messageOf(e);
      preview.hidden = true;
      delete preview.dataset.segments;
    }
  };
  area.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(ask, PREVIEW_DELAY_MS);
  });
  wrap.preview = ask;
  return wrap;
}

/** #/alarms/settings: the user's message templates and notification channels. */
export async function messagesView(main) {
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/alarms' }, '← Alarms')),
    h('h1', null, 'Alarm messages and notifications'));
  const [tpl, notify] = await Promise.all([api('GET', '/me/alarm-templates'), api('GET', '/me/notifications')]);

  // --- Templates.
  const fields = kindOrder(Object.keys(tpl.templates)).map((k) => templateField(k, tpl.templates[k]));
  const tplStatus = h('p', { class: 'muted', role: 'status', id: 'templates-status' });
  const tplForm = form({ class: 'templates', 'aria-label': 'SMS templates', id: 'templates-form' }, async (f) => {
    const templates = {};
    for (const area of f.querySelectorAll('textarea')) templates[area.name] = area.value;
    const saved = await api('PUT', '/me/alarm-templates', { templates });
    for (const area of f.querySelectorAll('textarea')) {
      if (saved.templates[area.name] != null) area.value = saved.templates[area.name];
    }
    tplStatus.textContent = 'Templates saved.';
    toast('Templates saved.');
  }, fields, h('button', { type: 'submit', class: 'primary', id: 'templates-save' }, 'Save templates'));
  tplForm.addEventListener('input', () => { tplStatus.textContent = ''; });

  // --- Channels.
  const CHANNELS = [['sms', 'SMS'], ['push', 'Push'], ['app', 'In the app']];
  const rows = kindOrder(Object.keys(notify.kinds)).map((k) => h('tr', { dataset: { kind: k } },
    h('th', { scope: 'row' }, KIND_LABEL[k] ?? k),
    CHANNELS.map(([c, label]) => {
      const input = h('input', { type: 'checkbox', name: `${k}.${c}`, checked: !!notify.kinds[k][c], 'aria-label': `${KIND_LABEL[k] ?? k}: ${label}` });
      return h('td', null, input);
    })));
  const nStatus = h('p', { class: 'muted', role: 'status', id: 'notify-status' });
  const nForm = form({ class: 'notify', 'aria-label': 'Notification settings', id: 'notify-form' }, async (f) => {
    const kinds = {};
    for (const tr of f.querySelectorAll('tr[data-kind]')) {
      const k = tr.dataset.kind;
      kinds[k] = Object.fromEntries(CHANNELS.map(([c]) => [c, tr.querySelector(`input[name="${k}.${c}"]`).checked]));
    }
    await api('PUT', '/me/notifications', { kinds });
    nStatus.textContent = 'Notification settings saved.';
    toast('Notification settings saved.');
  },
  h('div', { class: 'table-wrap' }, h('table', { class: 'channels' },
    h('caption', { class: 'muted' }, 'Where the alarms of each kind reach you. SMS goes to the account owner’s phone, and for camera alarms only when the camera’s alarm strategy asks for it.'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Alarm'), CHANNELS.map(([, label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', null, rows))),
  h('button', { type: 'submit', class: 'primary', id: 'notify-save' }, 'Save notification settings'));
  nForm.addEventListener('change', () => { nStatus.textContent = ''; });

  main.append(
    h('section', { class: 'card', 'aria-labelledby': 'tpl-h' }, h('h2', { id: 'tpl-h' }, 'SMS templates'),
      h('p', { class: 'muted' }, 'The text of the SMS for each kind of alarm. Placeholders are filled in when it is sent; write {{ and }} for a brace.'),
      h('dl', { class: 'placeholders' }, PLACEHOLDERS.map(([p, what]) => [h('dt', null, h('code', null, p)), h('dd', null, what)])),
      tplForm, tplStatus),
    h('section', { class: 'card', 'aria-labelledby': 'notify-h' }, h('h2', { id: 'notify-h' }, 'Notifications'), nForm, nStatus));
  // The previews of what is stored now.
  for (const f of fields) f.preview();
}
