// The operator's Equipment tab (H.626.4 6.1.1: a specified camera is assigned to the account
// once the service is approved; 6.2 vendor management): search, filter and page through the
// devices, assign, move or decommission one (each confirmed in a dialog), import devices
// from CSV (every bad row is listed, nothing is imported), and keep the vendor and model
// catalogue. Talks only to `/api/v1/admin/devices*`, `/admin/vendors*` and `/admin/models*`.

import { ApiError, api, authHeaders, check, field, form, h, messageOf, toast } from './app.js';

const PAGE = 25;
const STATES = [['', 'Any state'], ['unassigned', 'Unassigned'], ['assigned', 'Assigned'], ['decommissioned', 'Decommissioned']];
const ONLINE = [['', 'Online or not'], ['true', 'Online'], ['false', 'Offline']];
const KINDS = [['pu', 'Camera'], ['nvr', 'NVR'], ['mtu', 'MTU'], ['cs', 'Cloud storage']];

const options = (list, value) => {
  const s = h('select', null, list.map(([v, l]) => h('option', { value: v }, l)));
  if (value !== undefined) s.value = value;
  return s;
};

/** Asks in a modal dialog; resolves when `onConfirm(form)` succeeded, or on cancel. */
function confirmDialog(title, confirmLabel, kids, onConfirm) {
  const dialog = h('dialog', { class: 'card', 'aria-label': title });
  const close = () => { dialog.close(); dialog.remove(); };
  const f = form({ method: 'dialog' }, async (fm) => { await onConfirm(fm); close(); },
    h('h2', null, title), ...kids,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, confirmLabel),
      h('button', { type: 'button', onclick: close }, 'Cancel')));
  dialog.append(f);
  dialog.addEventListener('cancel', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** POSTs CSV text to the import route (the API helper sends JSON only). */
async function postCsv(text) {
  const resp = await fetch('/api/v1/admin/devices/import', {
    method: 'POST',
    headers: { 'Content-Type': 'text/csv', Accept: 'application/json', ...authHeaders() },
    body: text,
    cache: 'no-store',
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`, data?.message ?? `The server answered ${resp.status}.`, data?.fields ?? []);
  return data;
}

/** The Equipment tab. */
export async function equipmentView(main) {
  const catalogue = { vendors: [], models: [] };
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Id, name, vendor or model', autocomplete: 'off' });
  const vendorSel = options([['', 'Any vendor']]);
  const modelSel = options([['', 'Any model']]);
  const stateSel = options(STATES);
  const onlineSel = options(ONLINE);
  const owner = h('input', { name: 'owner', placeholder: 'Account id or +phone', autocomplete: 'off' });
  const rows = h('tbody');
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', disabled: true }, 'Previous page');
  const next = h('button', { type: 'button', disabled: true }, 'Next page');
  // Cursors of the pages before the current one, and the current one's.
  let cursors = [];
  let current = '';
  let nextCursor = null;

  const query = () => {
    const p = new URLSearchParams({ limit: String(PAGE) });
    for (const [k, el] of [['q', q], ['vendor', vendorSel], ['model', modelSel], ['state', stateSel], ['online', onlineSel], ['owner', owner]]) {
      if (el.value.trim()) p.set(k, el.value.trim());
    }
    if (current) p.set('cursor', current);
    return p.toString();
  };

  const actionButton = (label, d, run) => h('button', { type: 'button', 'aria-label': `${label} ${d.id}`, onclick: run }, label);

  const assignDialog = (d, moving) => {
    const account = h('input', { required: true, 'data-field': 'account', autocomplete: 'off', placeholder: '+15550190346 or 42' });
    const name = h('input', { 'data-field': 'name', maxlength: 64, value: moving ? '' : (d.name ?? '') });
    const verb = moving ? 'Move' : 'Assign';
    confirmDialog(`${verb} ${d.id}`, verb, [
      moving ? h('p', null, `It leaves account ${d.owner}: their shares end and their viewers are cut off.`) : null,
      field('Owner account', account, 'An approved owner: account id or phone number.'),
      field('Name in their list', name, 'Optional.'),
    ], async () => {
      await api('POST', `/admin/devices/${d.id}/${moving ? 'move' : 'assign'}`, { account: account.value.trim(), name: name.value.trim() || undefined });
      toast(`${d.id} ${moving ? 'moved' : 'assigned'} to ${account.value.trim()}.`);
      await refresh();
    });
  };

  const decommissionDialog = (d) => {
    const keep = h('input', { type: 'radio', name: 'recordings', value: 'keep', id: 'rec-keep', checked: true });
    const del = h('input', { type: 'radio', name: 'recordings', value: 'delete', id: 'rec-delete' });
    confirmDialog(`Decommission ${d.id}`, 'Decommission', [
      h('p', null, 'Its key stops admitting it: it is disconnected now and cannot register again. Its owner and every share lose it. This cannot be undone.'),
      h('fieldset', null, h('legend', null, 'Its recordings'),
        h('div', { class: 'check' }, keep, h('label', { for: 'rec-keep' }, 'Keep them')),
        h('div', { class: 'check' }, del, h('label', { for: 'rec-delete' }, 'Delete them (its NVRs and SD card)'))),
    ], async () => {
      const r = await api('POST', `/admin/devices/${d.id}/decommission`, { recordings: del.checked ? 'delete' : 'keep' });
      toast(`${d.id} decommissioned${r.disconnected ? ' and disconnected' : ''}.`);
      await refresh();
    });
  };

  const row = (d) => h('tr', { dataset: { deviceId: d.id, state: d.state, online: String(d.online) } },
    h('td', null, h('code', null, d.id)),
    h('td', null, d.name ?? ''),
    h('td', null, `${d.vendor} ${d.model}`),
    h('td', { class: 'state' }, d.state),
    h('td', { class: 'owner' }, d.owner == null ? '' : String(d.owner)),
    h('td', null, d.online ? `online (${d.node})` : 'offline'),
    h('td', { class: 'actions' },
      d.state === 'unassigned' && actionButton('Assign', d, () => assignDialog(d, false)),
      d.state === 'assigned' && actionButton('Move', d, () => assignDialog(d, true)),
      d.state !== 'decommissioned' && actionButton('Decommission', d, () => decommissionDialog(d))));

  async function refresh() {
    const page = await api('GET', `/admin/devices?${query()}`);
    rows.replaceChildren(...page.devices.map(row));
    if (!page.devices.length) rows.append(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No device matches.')));
    nextCursor = page.next_cursor ?? null;
    const first = cursors.length * PAGE + (page.devices.length ? 1 : 0);
    // `total_capped`: more match than the server counts (it stops at 10,000).
    const total = page.total_capped ? `${page.total}+` : String(page.total);
    summary.textContent = `${total} devices match; showing ${first}-${cursors.length * PAGE + page.devices.length}.`;
    prev.disabled = !cursors.length;
    next.disabled = !nextCursor;
  }
  const search = async () => {
    cursors = [];
    current = '';
    await refresh();
  };
  prev.addEventListener('click', () => { current = cursors.pop() ?? ''; refresh().catch((e) => toast(messageOf(e))); });
  next.addEventListener('click', () => { cursors.push(current); current = nextCursor; refresh().catch((e) => toast(messageOf(e))); });

  const searchForm = form({ class: 'filters', role: 'search', 'aria-label': 'Search devices' }, search,
    field('Search', q), field('Vendor', vendorSel), field('Model', modelSel), field('State', stateSel),
    field('Online', onlineSel), field('Owner', owner),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Search')));
  for (const s of [vendorSel, modelSel, stateSel, onlineSel]) s.addEventListener('change', () => search().catch((e) => toast(messageOf(e))));

  // CSV import: every problem of the file, by line and column.
  const file = h('input', { type: 'file', accept: '.csv,text/csv', 'aria-label': 'CSV file' });
  const importErrors = h('ul', { class: 'import-errors error', 'aria-label': 'Problems in the file', 'aria-live': 'polite' });
  const importForm = form({ class: 'import' }, async () => {
    importErrors.replaceChildren();
    const f = file.files?.[0];
    if (!f) throw new ApiError(400, 'no_file', 'choose a CSV file first');
    try {
      const r = await postCsv(await f.text());
      toast(`${r.rows} rows: ${r.created} new, ${r.unchanged} already there, ${r.assigned} assigned.`);
      await search();
    } catch (e) {
      if (e instanceof ApiError && e.code === 'bad_rows') {
        importErrors.replaceChildren(...e.fields.map((fe) => {
          const [line, column] = fe.field.split('.');
          return h('li', { dataset: { line, column } }, `Line ${line}${column ? `, ${column}` : ''}: ${fe.message}`);
        }));
        throw new ApiError(e.status, e.code, e.message);
      }
      throw e;
    }
  },
  h('p', { class: 'hint' }, 'Columns: device_id, kind, public_key, bind_code_sha256, vendor, model, name, account (the header names them; kind, name and account may be left out). Any bad row imports nothing.'),
  field('CSV file', file), h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Import')), importErrors);

  // The catalogue (6.2).
  const vendorList = h('ul', { class: 'vendors', 'aria-label': 'Vendors' });
  const modelList = h('ul', { class: 'models', 'aria-label': 'Models' });
  const remove = (what, id, label) => h('button', { type: 'button', 'aria-label': `Remove ${label}`, onclick: () => {
    confirmDialog(`Remove ${label}`, 'Remove', [h('p', null, 'Only a vendor without models, or a model no device carries, can be removed.')], async () => {
      await api('DELETE', `/admin/${what}/${id}`);
      toast(`${label} removed.`);
      await loadCatalogue();
    });
  } }, 'Remove');
  async function loadCatalogue() {
    const [vendors, models] = await Promise.all([api('GET', '/admin/vendors'), api('GET', '/admin/models')]);
    Object.assign(catalogue, { vendors, models });
    vendorList.replaceChildren(...vendors.map((v) => h('li', { dataset: { vendor: v.name } },
      h('strong', null, v.name), ` ${v.contact} · ${v.models} models `, remove('vendors', v.id, v.name))));
    modelList.replaceChildren(...models.map((m) => h('li', { dataset: { model: m.name, vendor: m.vendor } },
      h('strong', null, `${m.vendor} ${m.name}`), ` ${m.kind} · ${['ptz', 'audio', 'sd'].filter((c) => m[c]).join(', ') || 'no options'} · ${m.devices} devices `,
      remove('models', m.id, `${m.vendor} ${m.name}`))));
    const keep = [vendorSel.value, modelSel.value, newModelVendor.value];
    vendorSel.replaceChildren(h('option', { value: '' }, 'Any vendor'), ...vendors.map((v) => h('option', { value: v.name }, v.name)));
    modelSel.replaceChildren(h('option', { value: '' }, 'Any model'), ...[...new Set(models.map((m) => m.name))].map((n) => h('option', { value: n }, n)));
    newModelVendor.replaceChildren(...vendors.map((v) => h('option', { value: v.name }, v.name)));
    [vendorSel.value, modelSel.value, newModelVendor.value] = keep;
    if (!newModelVendor.value && vendors.length) newModelVendor.value = vendors[0].name;
  }
  const vendorName = h('input', { required: true, maxlength: 64, 'data-field': 'name' });
  const vendorContact = h('input', { maxlength: 200, 'data-field': 'contact' });
  const vendorForm = form({ class: 'add-vendor', 'aria-label': 'Add a vendor' }, async () => {
    await api('POST', '/admin/vendors', { name: vendorName.value.trim(), contact: vendorContact.value.trim() });
    toast(`${vendorName.value.trim()} added.`);
    vendorName.value = '';
    vendorContact.value = '';
    await loadCatalogue();
  }, field('Vendor name', vendorName), field('Contact', vendorContact, 'Support address or web site.'),
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add vendor')));
  const newModelVendor = h('select', { 'data-field': 'vendor' });
  const modelName = h('input', { required: true, maxlength: 64, 'data-field': 'name' });
  const modelKind = options(KINDS, 'pu');
  const caps = { ptz: check('Pan, tilt, zoom'), audio: check('Audio'), sd: check('SD card') };
  const modelForm = form({ class: 'add-model', 'aria-label': 'Add a model' }, async () => {
    const body = { vendor: newModelVendor.value, name: modelName.value.trim(), kind: modelKind.value };
    for (const [k, el] of Object.entries(caps)) body[k] = el.querySelector('input').checked;
    await api('POST', '/admin/models', body);
    toast(`${body.vendor} ${body.name} added.`);
    modelName.value = '';
    await loadCatalogue();
  }, field('Vendor', newModelVendor), field('Model name', modelName), field('Kind', modelKind),
  caps.ptz, caps.audio, caps.sd, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add model')));

  main.append(
    h('div', { class: 'heading' }, h('h1', null, 'Equipment')),
    h('section', { class: 'card', 'aria-labelledby': 'eq-devices-h' }, h('h2', { id: 'eq-devices-h' }, 'Devices'),
      searchForm, summary,
      h('div', { class: 'table-wrap' }, h('table', { class: 'equipment' },
        h('thead', null, h('tr', null, ...['Id', 'Name', 'Vendor and model', 'State', 'Owner', 'Online', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        rows)),
      h('div', { class: 'actions pager' }, prev, next)),
    h('section', { class: 'card', 'aria-labelledby': 'eq-import-h' }, h('h2', { id: 'eq-import-h' }, 'Import from CSV'), importForm),
    h('section', { class: 'card', 'aria-labelledby': 'eq-cat-h' }, h('h2', { id: 'eq-cat-h' }, 'Catalogue'),
      h('h3', null, 'Vendors'), vendorList, vendorForm, h('h3', null, 'Models'), modelList, modelForm),
  );
  await loadCatalogue();
  await search();
}
