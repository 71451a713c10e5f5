// Operator tab "Billing" (H.626.4 clause 7 accounting and charging; 6.2 advertising): the
// invoices of a period (`GET /api/v1/admin/invoices`, amounts in minor currency units, CSV
// download), closing a finished period (which posts it to the billing webhook), and the
// announcements shown in the user portal (create, delete).

import { api, apiBlob, download, field, form, h, messageOf, toast } from './app.js';

/** Minor units as a price: 1234 EUR -> "EUR 12.34" (integers only). */
export function money(minor, currency) {
  const whole = Math.floor(minor / 100);
  const cents = String(minor % 100).padStart(2, '0');
  return `${currency} ${whole}.${cents}`;
}

export async function billingView(main) {
  const month = h('input', { type: 'month', name: 'period', id: 'invoice-period', value: new Date().toISOString().slice(0, 7) });
  const table = h('div', { id: 'invoices', 'aria-live': 'polite' });
  const anns = h('ul', { id: 'announcements', 'aria-label': 'Announcements' });
  const loadInvoices = async () => {
    const inv = await api('GET', `/admin/invoices?period=${month.value}`);
    const rows = inv.invoices.map((i) => h('tr', { dataset: { account: String(i.account) } },
      h('td', null, String(i.account)), h('td', null, i.login ?? ''), h('td', null, i.plan),
      h('td', null, i.lines.filter((l) => l.item !== 'plan').map((l) => `${l.item} ${l.quantity}`).join(', ')),
      h('td', { class: 'num' }, money(i.total_minor, i.currency))));
    table.replaceChildren(
      h('p', null, `${inv.period}: ${inv.invoices.length} invoices, ${inv.closed ? 'closed' : 'open'}.`),
      h('table', null, h('thead', null, h('tr', null, ...['Account', 'Login', 'Plan', 'Usage', 'Total'].map((t) => h('th', null, t)))), h('tbody', null, ...rows)));
  };
  const loadAnns = async () => {
    const all = await api('GET', '/admin/announcements');
    anns.replaceChildren(...all.map((a) => h('li', { dataset: { announcement: String(a.id) } },
      h('strong', null, a.title), ` ${a.audience ? `(plan ${a.audience}) ` : ''}· ${a.body} `,
      h('button', { type: 'button', 'aria-label': `Delete announcement ${a.title}`, onclick: async () => {
        try {
          await api('DELETE', `/admin/announcements/${a.id}`);
          await loadAnns();
        } catch (e) {
          toast(messageOf(e));
        }
      } }, 'Delete'))));
    if (!all.length) anns.append(h('li', { class: 'muted' }, 'No announcements.'));
  };
  month.addEventListener('change', () => loadInvoices().catch((e) => toast(messageOf(e))));
  main.append(
    h('h1', null, 'Billing'),
    h('section', { class: 'card', 'aria-labelledby': 'inv-h' }, h('h2', { id: 'inv-h' }, 'Invoices'),
      h('div', { class: 'inline' }, field('Period', month),
        h('button', { type: 'button', id: 'invoices-csv', onclick: async () => {
          try {
            download(await apiBlob(`/admin/invoices?period=${month.value}&format=csv`), `peercam-invoices-${month.value}.csv`);
          } catch (e) {
            toast(messageOf(e));
          }
        } }, 'Download CSV'),
        h('button', { type: 'button', id: 'period-close', onclick: async () => {
          try {
            const r = await api('POST', `/admin/billing/close?period=${month.value}`);
            toast(`${r.period} closed: ${r.invoices} invoices${r.webhook ? ', sent to billing' : ''}.`);
            await loadInvoices();
          } catch (e) {
            toast(messageOf(e));
          }
        } }, 'Close period')),
      table),
    h('section', { class: 'card', 'aria-labelledby': 'ann-h' }, h('h2', { id: 'ann-h' }, 'Announcements'),
      h('p', { class: 'muted' }, 'Shown to users in their portal (optionally only to one plan), between the start and end.'),
      anns,
      form({ 'aria-label': 'New announcement', id: 'announce-form' }, async (f) => {
        const at = (v) => (v ? Math.floor(new Date(v).getTime() / 1000) : null);
        await api('POST', '/admin/announcements', {
          title: f.title.value, body: f.body.value, audience: f.audience.value || null,
          starts_at: at(f.starts.value), ends_at: at(f.ends.value),
        });
        f.reset();
        toast('Announcement published.');
        await loadAnns();
      },
      field('Title', { name: 'title', required: true, maxlength: '120' }),
      field('Text', h('textarea', { name: 'body', maxlength: '2000', rows: '3' })),
      field('Only for plan', { name: 'audience', placeholder: 'every account' }),
      field('From', { name: 'starts', type: 'datetime-local' }),
      field('Until', { name: 'ends', type: 'datetime-local' }),
      h('button', { type: 'submit', class: 'primary' }, 'Publish'))),
  );
  await Promise.all([loadInvoices(), loadAnns()]);
}
