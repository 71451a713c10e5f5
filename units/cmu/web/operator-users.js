// The operator portal's Users tab (H.626.4 6.2, issue 18 item 2): search accounts by phone,
// name or contract id, filter by status, page through them; approve, disable, enable, reset
// a password by SMS; see each account's two-factor state and what the CRM said.

import { ApiError, api, authHeaders, h, messageOf, toast } from './app.js';

const STATUSES = [
  ['', 'Any status'],
  ['pending_crm', 'Waiting for the CRM'],
  ['pending_approval', 'Waiting for approval'],
  ['active', 'Active'],
  ['disabled', 'Disabled'],
];

const PAGE = 50;

/** One page of `GET /api/v1/admin/users`: the accounts and the next page's cursor. */
async function page(q, status, cursor) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (q) params.set('q', q);
  if (status) params.set('status', status);
  if (cursor) params.set('cursor', cursor);
  let resp;
  try {
    resp = await fetch(`/api/v1/admin/users?${params}`, { headers: authHeaders() });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the peercam server. Check your connection and try again.');
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`, data?.message ?? `The server answered ${resp.status}.`);
  return { users: data, next: resp.headers.get('x-next-cursor') };
}

/** The Users tab. */
export async function usersView(main) {
  const list = h('ul', { class: 'users', 'aria-label': 'Accounts', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'More');
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Phone, name or contract id', 'aria-label': 'Search accounts' });
  const status = h('select', { name: 'status', 'aria-label': 'Status' }, STATUSES.map(([v, l]) => h('option', { value: v }, l)));
  let cursor = null;

  const action = (u, path, label, done) => h('button', { type: 'button', 'aria-label': `${label} ${u.login}`, dataset: { action: path }, onclick: async (ev) => {
    ev.target.disabled = true;
    try {
      await api('POST', `/admin/users/${u.id}/${path}`);
      toast(done);
      await search();
    } catch (e) {
      toast(messageOf(e));
      ev.target.disabled = false;
    }
  } }, label);

  const row = (u) => h('li', { dataset: { login: u.login, status: u.status } },
    h('strong', null, u.login),
    u.name && ` ${u.name}`,
    u.contract_id && ` · contract ${u.contract_id}`,
    ` · ${u.role} · `,
    h('span', { class: 'state' }, u.status.replaceAll('_', ' ')),
    ` · 2FA ${u.totp ? 'on' : 'off'}`,
    u.crm_note && h('small', { class: 'muted' }, ` · CRM: ${u.crm_note}`),
    ' ',
    u.status === 'pending_approval' && action(u, 'approve', 'Approve', `${u.login} approved.`),
    u.status === 'active' && u.role !== 'operator' && action(u, 'disable', 'Disable', `${u.login} disabled; its sessions ended.`),
    u.status === 'disabled' && action(u, 'enable', 'Enable', `${u.login} enabled again.`),
    u.role === 'owner' && action(u, 'reset-password', 'Reset password', `A one-time code went to ${u.login} by SMS.`));

  const load = async (append) => {
    const r = await page(q.value.trim(), status.value, append ? cursor : null);
    cursor = r.next;
    more.hidden = !cursor;
    if (!append) list.replaceChildren();
    list.append(...r.users.map(row));
    if (!list.children.length) list.append(h('li', { class: 'muted' }, 'No account matches.'));
  };
  const search = () => load(false);
  more.addEventListener('click', () => load(true).catch((e) => toast(messageOf(e))));

  const form = h('form', { class: 'row', role: 'search', 'aria-label': 'Account search' }, q, status, h('button', { type: 'submit', class: 'primary' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    search().catch((e) => toast(messageOf(e)));
  });
  main.append(h('h1', null, 'Users'), h('section', { class: 'card' }, form, list, more));
  await search();
}
