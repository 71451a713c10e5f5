// The user's usage and plan (H.626.4 clause 7 accounting, 6.2 "IPC subscription") and the
// operator's announcements (6.2 "advertising") in the user portal.

import { api, h, messageOf } from './app.js';

const KINDS = {
  live_s_direct: ['Live view, direct', (v) => `${Math.round(v / 60)} min`],
  live_s_punched: ['Live view, punched', (v) => `${Math.round(v / 60)} min`],
  live_s_relay: ['Live view, relayed', (v) => `${Math.round(v / 60)} min`],
  relay_bytes: ['Relayed traffic', (v) => `${(v / 1e6).toFixed(1)} MB`],
  cloud_kb_h: ['Cloud storage', (v) => `${(v / 24e6).toFixed(3)} GB-days`],
  sms: ['SMS', (v) => String(v)],
  snapshots: ['Snapshots', (v) => String(v)],
};

const money = (minor, currency) => `${currency} ${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, '0')}`;

/** The "Usage this month" card: what the account used, what the plan includes, the charge so far. */
export function usageCard() {
  const body = h('div', { id: 'usage' }, h('p', { class: 'muted' }, 'Loading…'));
  (async () => {
    try {
      const u = await api('GET', '/me/usage');
      const inv = u.invoice;
      const rows = inv.lines.filter((l) => l.item !== 'plan').map((l) => {
        const [label, fmt] = KINDS[l.item] ?? [l.item, String];
        return h('tr', { dataset: { kind: l.item } }, h('td', null, label), h('td', { class: 'num' }, fmt(l.quantity)),
          h('td', { class: 'num' }, l.included ? fmt(l.included) : '—'), h('td', { class: 'num' }, money(l.amount_minor, inv.currency)));
      });
      body.replaceChildren(
        h('p', { id: 'usage-plan' }, `Plan ${inv.plan} · ${u.period} · so far ${money(inv.total_minor, inv.currency)}`),
        rows.length
          ? h('table', null, h('thead', null, h('tr', null, ...['', 'Used', 'Included', 'Charge'].map((t) => h('th', null, t)))), h('tbody', null, ...rows))
          : h('p', { class: 'muted' }, 'Nothing used yet this month.'));
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
    }
  })();
  return h('section', { class: 'card', 'aria-labelledby': 'usage-h' }, h('h2', { id: 'usage-h' }, 'Usage this month'), body);
}

/** The operator's current announcements, or nothing. */
export function announcements() {
  const box = h('section', { class: 'announcements', 'aria-label': 'Announcements', id: 'announcements' });
  (async () => {
    try {
      const all = await api('GET', '/announcements');
      box.replaceChildren(...all.map((a) => h('article', { class: 'card announcement', dataset: { announcement: String(a.id) } },
        h('h2', null, a.title), h('p', null, a.body))));
    } catch {
      // Announcements are optional; the page works without them.
    }
  })();
  return box;
}
