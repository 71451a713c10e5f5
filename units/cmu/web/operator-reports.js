// Operator tab "Reports" (H.626.4 6.2, issue 18 item 5): charts of the platform's statistics
// drawn as inline SVG built element by element (no library, no markup parsed, nothing inline
// that the CSP forbids), from `GET /api/v1/admin/stats`, and the daily and monthly reports
// as CSV downloads (`/api/v1/admin/reports/{daily|monthly}.csv`).

import { api, apiBlob, download, field, h, messageOf, toast } from './app.js';

const SVG = 'http://www.w3.org/2000/svg';

/** One SVG element with attributes (never parsed from text). */
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, String(v));
  for (const k of kids) if (k != null) el.append(k);
  return el;
}

/** The charts: series names and how to read their values. */
const CHARTS = [
  ['devices_online', 'Devices online', (v) => String(v)],
  ['live', 'Live minutes by path', (v) => `${Math.round(v / 60)} min`],
  ['relay_bytes', 'Relay traffic', (v) => bytes(v)],
  ['storage', 'Cloud storage per plan', (v) => bytes(v)],
  ['signups', 'Sign-ups', (v) => String(v)],
  ['alarms', 'Alarms', (v) => String(v)],
  ['sms', 'SMS sent', (v) => String(v)],
];

function bytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/** A line chart of `lines` ([name, [[t, v], ...]]) over [from, to). */
export function chart(title, lines, from, to, fmt) {
  const W = 480;
  const H = 160;
  const P = 30;
  const max = Math.max(1, ...lines.flatMap(([, pts]) => pts.map(([, v]) => v)));
  const x = (t) => P + ((t - from) / Math.max(1, to - from)) * (W - 2 * P);
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  const total = lines.reduce((a, [, pts]) => a + pts.reduce((b, [, v]) => b + v, 0), 0);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart', 'aria-label': `${title}: peak ${fmt(max)}` },
    s('title', null, title),
    s('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, class: 'axis' }),
    s('line', { x1: P, y1: P, x2: P, y2: H - P, class: 'axis' }),
    s('text', { x: 2, y: P - 6, class: 'tick' }, fmt(max)),
    s('text', { x: P, y: H - 8, class: 'tick' }, new Date(from * 1000).toLocaleString()),
    s('text', { x: W - P, y: H - 8, class: 'tick end' }, new Date(to * 1000).toLocaleString()));
  lines.forEach(([name, pts], i) => {
    const cls = `series s${i % 6}`;
    if (pts.length === 1) {
      svg.append(s('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, class: cls }));
    } else if (pts.length) {
      svg.append(s('polyline', { points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '), class: cls, fill: 'none' }));
    }
    svg.append(s('text', { x: W - P, y: P + 12 * i, class: `legend ${cls} end` }, name));
  });
  return h('figure', { class: 'card chart-card', dataset: { chart: title } }, svg,
    h('figcaption', null, `${title} · total ${fmt(total)}`));
}

/** Groups the answer's series into the charts' lines. */
function linesOf(id, series) {
  const pick = (prefix) => Object.entries(series).filter(([k]) => k.startsWith(prefix));
  if (id === 'live') {
    return [['direct', series.live_s_direct ?? []], ['punched', series.live_s_punched ?? []], ['relay', series.live_s_relay ?? []]];
  }
  if (id === 'storage') return pick('storage_bytes:').map(([k, v]) => [k.slice('storage_bytes:'.length), v]);
  return [[id, series[id] ?? []]];
}

const today = () => new Date().toISOString().slice(0, 10);

export async function reportsView(main) {
  const charts = h('div', { class: 'charts', 'aria-live': 'polite' });
  const range = h('select', { name: 'range', id: 'stats-range' },
    h('option', { value: '86400:3600' }, 'Last 24 hours'),
    h('option', { value: '604800:21600', selected: true }, 'Last 7 days'),
    h('option', { value: '2592000:86400' }, 'Last 30 days'));
  const load = async () => {
    const [span, step] = range.value.split(':').map(Number);
    const to = Math.floor(Date.now() / 1000) + 1;
    const from = to - span;
    const st = await api('GET', `/admin/stats?from=${from}&to=${to}&step=${step}`);
    charts.replaceChildren(...CHARTS.map(([id, title, fmt]) => chart(title, linesOf(id, st.series), st.from, st.to, fmt)));
  };
  range.addEventListener('change', () => load().catch((e) => toast(messageOf(e))));
  const day = h('input', { type: 'date', name: 'day', id: 'report-day', value: today() });
  const month = h('input', { type: 'month', name: 'month', id: 'report-month', value: today().slice(0, 7) });
  const get = (which, period) => async (ev) => {
    ev.target.disabled = true;
    try {
      const blob = await apiBlob(`/admin/reports/${which}.csv?period=${encodeURIComponent(period())}`);
      download(blob, `peercam-${which}-${period()}.csv`);
      toast(`The ${which} report is downloading.`);
    } catch (e) {
      toast(messageOf(e));
    } finally {
      ev.target.disabled = false;
    }
  };
  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Reports'), field('Period', range)),
    charts,
    h('section', { class: 'card', 'aria-labelledby': 'reports-h' }, h('h2', { id: 'reports-h' }, 'Reports (CSV)'),
      h('p', { class: 'muted' }, 'Usage per account and kind: live seconds by path, relay bytes, cloud kilobyte-hours, SMS, snapshots.'),
      h('div', { class: 'inline' }, field('Day', day),
        h('button', { type: 'button', id: 'report-daily', onclick: get('daily', () => day.value) }, 'Download daily report')),
      h('div', { class: 'inline' }, field('Month', month),
        h('button', { type: 'button', id: 'report-monthly', onclick: get('monthly', () => month.value) }, 'Download monthly report'))),
  );
  await load();
}
