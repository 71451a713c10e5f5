// The operator's logs (H.626.4 6.1.14, the "Logs" tab): the audit log (what people did)
// and the system log (what the units did: starts, SCU node links, faults, campaigns),
// searched by time range, actor, device, action and outcome, a page at a time, and
// exported as CSV or JSON lines with the same filters.

import { api, apiBlob, download, field, h, messageOf, toast } from './app.js';

const PAGE = 100;

/** Unix seconds of a `datetime-local` value, or undefined. */
function seconds(v) {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

/** The "Logs" tab. */
export async function logsView(main) {
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  let cursor = null;
  const kind = h('select', { name: 'log' }, h('option', { value: 'audit' }, 'Audit log'), h('option', { value: 'syslog' }, 'System log'));
  const form = h('form', { class: 'card log-filters', 'aria-labelledby': 'logs-filter-h' },
    h('h2', { id: 'logs-filter-h' }, 'Search'),
    field('Log', kind),
    field('From', { name: 'from', type: 'datetime-local' }),
    field('To', { name: 'to', type: 'datetime-local' }),
    field('Actor (account id)', { name: 'actor', type: 'number', inputmode: 'numeric' }, 'Audit log only.'),
    field('Device (or subject)', { name: 'device' }),
    field('Action (or event)', { name: 'action', placeholder: 'campaign.*' }, 'A trailing * matches a prefix.'),
    field('Outcome (or unit)', { name: 'outcome', placeholder: 'ok' }, 'Audit: ok or a refusal code. System log: the unit (cmu).'),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', dataset: { format: 'csv' }, onclick: () => exportAs('csv') }, 'Export CSV'),
      h('button', { type: 'button', dataset: { format: 'jsonl' }, onclick: () => exportAs('jsonl') }, 'Export JSON lines')));

  const query = () => {
    const f = new FormData(form);
    const q = new URLSearchParams();
    const put = (k, v) => { if (v !== undefined && v !== null && String(v).trim() !== '') q.set(k, String(v).trim()); };
    put('from', seconds(f.get('from')));
    put('to', seconds(f.get('to')));
    if (kind.value === 'audit') put('actor', f.get('actor'));
    put('device', f.get('device'));
    put('action', f.get('action'));
    put(kind.value === 'audit' ? 'outcome' : 'unit', f.get('outcome'));
    return q;
  };

  const row = (e) => kind.value === 'audit'
    ? h('tr', { dataset: { id: String(e.id), action: e.action } },
      h('td', null, new Date(e.at * 1000).toLocaleString()), h('td', null, e.actor == null ? '' : String(e.actor)),
      h('td', null, e.action), h('td', null, e.device_id ?? ''), h('td', null, e.outcome), h('td', null, e.detail))
    : h('tr', { dataset: { id: String(e.id), action: e.event } },
      h('td', null, new Date(e.at * 1000).toLocaleString()), h('td', null, e.unit),
      h('td', null, e.event), h('td', null, e.subject ?? ''), h('td', null, ''), h('td', null, e.detail));

  const search = async (append) => {
    const q = query();
    q.set('limit', String(PAGE));
    if (append && cursor != null) q.set('cursor', String(cursor));
    const found = await api('GET', `/admin/${kind.value}?${q}`);
    if (!append) rows.replaceChildren();
    rows.append(...found.map(row));
    cursor = found.length ? found[found.length - 1].id : cursor;
    more.hidden = found.length < PAGE;
    status.textContent = rows.children.length ? `${rows.children.length} rows shown, newest first.` : 'Nothing matches.';
  };

  async function exportAs(format) {
    const q = query();
    q.set('format', format);
    try {
      const blob = await apiBlob(`/admin/${kind.value}/export?${q}`);
      download(blob, `${kind.value === 'audit' ? 'audit' : 'syslog'}.${format}`);
      toast('Export saved.');
    } catch (e) {
      toast(messageOf(e));
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    search(false).catch((e) => toast(messageOf(e)));
  });
  more.addEventListener('click', () => search(true).catch((e) => toast(messageOf(e))));
  kind.addEventListener('change', () => search(false).catch((e) => toast(messageOf(e))));

  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Logs')),
    form,
    h('section', { class: 'card', 'aria-labelledby': 'logs-h' }, h('h2', { id: 'logs-h' }, 'Rows'), status,
      h('div', { class: 'table-wrap' }, h('table', { class: 'logs' },
        h('thead', null, h('tr', null, ...['When', 'Actor / unit', 'Action / event', 'Device / subject', 'Outcome', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))), rows)),
      more),
  );
  await search(false);
}
