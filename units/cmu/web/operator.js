// The operator portal (H.626.4 6.2, network management 6.1.14): one page with a tab per
// function, `#/operator/<tab>`. Each tab is a view `(main, onLeave) => Promise` in its own
// module (operator-*.js) that talks only to `/api/v1/admin/*`; this module holds the tab
// bar and the overview (faults, sign-ups waiting for approval, device counts).
//
// To add a tab: write `operator-<name>.js` exporting its view, import it here, add one entry
// to TABS, and list the module in web.rs ASSETS, sw.js SHELL and web-tests' FILES.

import { api, currentRole, h, messageOf, toast } from './app.js';
import { equipmentView } from './operator-equipment.js';
import { usersView } from './operator-users.js';
import { campaignsView } from './operator-campaigns.js';
import { logsView } from './operator-logs.js';
import { billingView } from './operator-billing.js';
import { reportsView } from './operator-reports.js';

/** The tabs, in order: id (the address `#/operator/<id>`), label, view. */
const TABS = [
  ['overview', 'Overview', overviewView],
  ['equipment', 'Equipment', equipmentView],
  ['users', 'Users', usersView],
  ['campaigns', 'Upgrades', campaignsView],
  ['logs', 'Logs', logsView],
  ['reports', 'Reports', reportsView],
  ['billing', 'Billing', billingView],
];

/** Renders the operator page with `tab` selected; an unknown tab falls back to the overview. */
export async function operatorView(main, tab, onLeave) {
  if (currentRole() !== 'operator') {
    main.append(h('h1', null, 'Operator'), h('p', { class: 'error' }, 'Only the operator account may open this page.'));
    return;
  }
  const current = TABS.find(([id]) => id === tab) ?? TABS[0];
  main.append(h('nav', { class: 'tabs operator-tabs', 'aria-label': 'Operator functions' },
    ...TABS.map(([id, label]) => h('a', { href: `#/operator/${id}`, 'aria-current': id === current[0] ? 'page' : null, dataset: { tab: id } }, label))));
  const body = h('div', { class: 'operator-tab', dataset: { tab: current[0] } });
  main.append(body);
  await current[2](body, onLeave);
}

/** Overview: faults (6.1.14) with acknowledge and resolve, sign-ups to approve, device counts. */
async function overviewView(main, onLeave) {
  const pending = h('ul', { class: 'pending', 'aria-label': 'Accounts waiting for approval', 'aria-live': 'polite' });
  const devices = h('div');
  const faults = h('ul', { class: 'faults', 'aria-label': 'Active faults', 'aria-live': 'polite' });
  const faultAction = (f, what, label) => h('button', { type: 'button', 'aria-label': `${label} fault ${f.id}`, onclick: async (ev) => {
    ev.target.disabled = true;
    try {
      await api('POST', `/admin/faults/${f.id}/${what}`);
      toast(`Fault ${f.id} ${what === 'ack' ? 'acknowledged' : 'resolved'}.`);
      await refresh();
    } catch (e) {
      toast(messageOf(e));
      ev.target.disabled = false;
    }
  } }, label);
  const refresh = async () => {
    const [users, devs, open] = await Promise.all([api('GET', '/admin/users?status=pending_approval'), api('GET', '/admin/devices'), api('GET', '/admin/faults')]);
    faults.replaceChildren(...open.map((f) => h('li', { dataset: { fault: String(f.id), kind: f.kind, state: f.state } },
      h('strong', null, f.kind.replaceAll('_', ' ')), ` ${f.subject} · ${f.detail} · since ${new Date(f.raised_at * 1000).toLocaleString()} · `,
      h('span', { class: 'state' }, f.state), ' ',
      f.state === 'open' && faultAction(f, 'ack', 'Acknowledge'),
      faultAction(f, 'resolve', 'Resolve'))));
    if (!open.length) faults.append(h('li', { class: 'muted' }, 'No active faults.'));
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
    h('section', { class: 'card', 'aria-labelledby': 'faults-h' }, h('h2', { id: 'faults-h' }, 'Faults'), faults),
    h('section', { class: 'card', 'aria-labelledby': 'pending-h' }, h('h2', { id: 'pending-h' }, 'Sign-ups waiting for approval'), pending),
    h('section', { class: 'card', 'aria-labelledby': 'devs-h' }, h('h2', { id: 'devs-h' }, 'Devices'), devices),
  );
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 15_000);
  onLeave(() => clearInterval(timer));
}
