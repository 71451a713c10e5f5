// Fleet upgrade campaigns in the operator portal (H.626.4 8.11.1 over a fleet, the
// "Upgrades" tab): start a campaign (a signed package, the devices by model, version or
// list, a canary share then waves), follow its progress per stage and per device, pause,
// resume or abort it. The CMU pauses a campaign by itself when too many devices of a stage
// fail; this page shows why.

import { api, field, h, messageOf, toast } from './app.js';

/** The progress of a campaign: devices finished of all, and a bar. */
function progressOf(c) {
  const total = c.stages.reduce((n, s) => n + s.devices, 0);
  const done = c.stages.reduce((n, s) => n + s.installed + s.failed + s.skipped, 0);
  return { total, done, bar: h('progress', { max: String(Math.max(total, 1)), value: String(done), 'aria-label': `Campaign ${c.id}: ${done} of ${total} devices finished` }) };
}

function stateText(c) {
  if (c.state === 'soaking' && c.next_stage_at) return `soaking until ${new Date(c.next_stage_at * 1000).toLocaleTimeString()}`;
  return c.state;
}

/** The "Upgrades" tab. */
export async function campaignsView(main, onLeave) {
  const list = h('tbody');
  const detail = h('div', { class: 'campaign-detail-slot' });
  const packages = h('select', { name: 'package', required: true });
  let open = null;

  const num = (name, value, props = {}) => h('input', { name, type: 'number', inputmode: 'numeric', value: String(value), ...props });
  const form = h('form', { class: 'card campaign-create', 'aria-labelledby': 'campaign-new-h', novalidate: true },
    h('h2', { id: 'campaign-new-h' }, 'New campaign'),
    field('Name', { name: 'name', required: true, maxlength: 100, value: 'Fleet upgrade' }),
    field('Package', packages, 'Signed releases with their payload uploaded; the campaign upgrades cameras of its model.'),
    field('Only devices running version', { name: 'version', placeholder: 'any' }, 'Optional.'),
    field('Only these devices', h('textarea', { name: 'devices', rows: 2, placeholder: 'pc-… pc-…' }), 'Optional: device ids separated by spaces or commas (a group).'),
    field('Canary share (%)', num('canary_percent', 5, { min: 1, max: 100 }), 'At least one device.'),
    field('Wave size (devices)', num('wave_size', '', { min: 1, placeholder: 'a quarter of the rest' })),
    field('Soak time between stages (s)', num('soak_s', 600, { min: 0 })),
    field('Pause when failures exceed (%)', num('failure_percent', 20, { min: 0, max: 100 })),
    field('… after at least (results)', num('min_results', 3, { min: 1 })),
    h('button', { type: 'submit', class: 'primary' }, 'Start campaign'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const int = (k) => (f.get(k) === '' || f.get(k) == null ? undefined : Number(f.get(k)));
    const devices = String(f.get('devices') ?? '').split(/[\s,]+/).filter(Boolean);
    const body = {
      name: String(f.get('name') ?? '').trim(),
      package: String(f.get('package') ?? ''),
      target: { version: String(f.get('version') ?? '').trim() || undefined, devices },
      canary_percent: int('canary_percent'),
      wave_size: int('wave_size'),
      soak_s: int('soak_s'),
      failure_percent: int('failure_percent'),
      min_results: int('min_results'),
    };
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const made = await api('POST', '/admin/campaigns', body);
      toast(`Campaign ${made.campaign.id} started on ${made.devices.length} devices.`);
      open = made.campaign.id;
      await refresh();
    } catch (e) {
      toast(messageOf(e));
    } finally {
      button.disabled = false;
    }
  });

  const act = (c, what, label) => h('button', { type: 'button', class: what === 'abort' ? 'danger' : null, 'aria-label': `${label} campaign ${c.id}`, onclick: async (ev) => {
    if (what === 'abort' && !confirm(`Abort campaign ${c.id}? Devices not ordered yet are skipped.`)) return;
    ev.target.disabled = true;
    try {
      await api('POST', `/admin/campaigns/${c.id}/${what}`, {});
      toast(`Campaign ${c.id}: ${what === 'abort' ? 'aborted' : what === 'pause' ? 'paused' : 'resumed'}.`);
      await refresh();
    } catch (e) {
      toast(messageOf(e));
      ev.target.disabled = false;
    }
  } }, label);

  const renderDetail = (d) => {
    const c = d.campaign;
    const { total, done, bar } = progressOf(c);
    const stages = h('table', { class: 'campaign-stages' },
      h('caption', null, 'Stages'),
      h('thead', null, h('tr', null, ...['Stage', 'Devices', 'Pending', 'In flight', 'Installed', 'Failed', 'Skipped', 'Offline'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, ...c.stages.map((s) => h('tr', { dataset: { stage: String(s.stage) }, class: s.stage === c.stage ? 'current' : null },
        h('th', { scope: 'row' }, s.stage === 0 ? 'Canary' : `Wave ${s.stage}`),
        ...[s.devices, s.pending, s.in_flight, s.installed, s.failed, s.skipped, s.offline].map((n) => h('td', null, String(n)))))));
    const devices = h('table', { class: 'campaign-devices' },
      h('caption', null, 'Devices'),
      h('thead', null, h('tr', null, ...['Device', 'Stage', 'State', 'Reason', 'Progress'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, ...d.devices.map((x) => h('tr', { dataset: { device: x.device_id, state: x.state } },
        h('td', null, x.device_id),
        h('td', null, x.stage === 0 ? 'canary' : String(x.stage)),
        h('td', { class: 'state' }, x.state),
        h('td', { class: 'reason' }, x.reason ?? ''),
        h('td', null, x.state === 'downloading' && x.total ? `${Math.round((100 * x.done) / x.total)} %` : '')))));
    detail.replaceChildren(h('section', { class: 'card campaign-detail', 'aria-labelledby': 'campaign-h', 'aria-live': 'polite', dataset: { campaign: String(c.id), state: c.state } },
      h('h2', { id: 'campaign-h' }, `Campaign ${c.id}: ${c.name}`),
      h('p', null, `${c.model} → ${c.version} · `, h('strong', { class: 'campaign-state' }, stateText(c)), ` · stage ${c.stage + 1} of ${c.stages.length}`),
      c.reason && h('p', { class: c.state === 'paused' ? 'error campaign-reason' : 'campaign-reason' }, c.reason),
      bar, h('p', null, `${done} of ${total} devices finished.`),
      h('div', { class: 'actions' },
        ['running', 'soaking'].includes(c.state) && act(c, 'pause', 'Pause'),
        c.state === 'paused' && act(c, 'resume', 'Resume'),
        !['aborted', 'completed'].includes(c.state) && act(c, 'abort', 'Abort')),
      h('div', { class: 'table-wrap' }, stages),
      h('div', { class: 'table-wrap' }, devices)));
  };

  const refresh = async () => {
    const [all, pkgs] = await Promise.all([api('GET', '/admin/campaigns'), packages.options.length ? null : api('GET', '/admin/packages')]);
    if (pkgs) {
      packages.replaceChildren(...pkgs.filter((p) => p.stored).map((p) => h('option', { value: p.sha256 }, `${p.model} ${p.version}`)));
      if (!packages.options.length) packages.append(h('option', { value: '' }, 'No package uploaded'));
    }
    list.replaceChildren(...all.map((c) => {
      const { total, done, bar } = progressOf(c);
      return h('tr', { dataset: { campaign: String(c.id), state: c.state } },
        h('td', null, String(c.id)), h('td', null, c.name), h('td', null, `${c.model} ${c.version}`),
        h('td', { class: 'state' }, stateText(c)), h('td', null, bar, ` ${done}/${total}`),
        h('td', null, h('button', { type: 'button', 'aria-label': `Open campaign ${c.id}`, onclick: async () => { open = c.id; await refresh(); } }, 'Open')));
    }));
    if (!all.length) list.append(h('tr', null, h('td', { colspan: 6, class: 'muted' }, 'No campaigns yet.')));
    if (open != null) renderDetail(await api('GET', `/admin/campaigns/${open}`));
  };

  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Upgrades'),
      h('button', { type: 'button', onclick: () => refresh().catch((e) => toast(messageOf(e))) }, 'Refresh')),
    form,
    h('section', { class: 'card', 'aria-labelledby': 'campaigns-h' }, h('h2', { id: 'campaigns-h' }, 'Campaigns'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'campaigns' },
        h('thead', null, h('tr', null, ...['Id', 'Name', 'Release', 'State', 'Progress', ''].map((t) => h('th', { scope: 'col' }, t)))), list))),
    detail,
  );
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  onLeave(() => clearInterval(timer));
}
