// Cloud storage plan and usage (H.626.4 6.1.13: free storage for every account, paid storage
// beyond it): the account's plan, how much of its pool the cameras use on the cloud storage
// units, and for owners the choice of another plan (`PUT /api/v1/me/plan`, effective at
// once; a smaller plan deletes the oldest recordings beyond it after a grace).

import { api, field, form, h, messageOf, toast } from './app.js';

const mb = (n) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : `${(n / 1024 ** 2).toFixed(1)} MB`);

/** One plan in words: name, size, age limit, price. */
function planText(p) {
  const age = p.max_age_days ? `, kept ${p.max_age_days} days` : '';
  return `${p.name}: ${mb(p.quota_bytes)}${age}${p.price ? ` (${p.price})` : ' (free)'}`;
}

/** The "Cloud storage" card: loads itself; `id` attributes are for the browser tests. */
export function cloudPlanCard() {
  const body = h('div', { id: 'cloud-plan' }, h('p', { class: 'muted' }, 'Loading…'));
  const card = h('section', { class: 'card', 'aria-labelledby': 'cloud-h' }, h('h2', { id: 'cloud-h' }, 'Cloud storage'), body);
  const show = (st, plans, owner) => {
    const u = st.usage;
    const meter = h('meter', { id: 'cloud-meter', min: '0', max: String(st.plan.quota_bytes), value: String(Math.min(u.used_bytes, st.plan.quota_bytes)), high: String(st.plan.quota_bytes * 0.9) });
    const kids = [
      h('p', { id: 'cloud-plan-name' }, `Plan: ${planText(st.plan)}`),
      h('p', { id: 'cloud-usage' }, meter, ` ${mb(u.used_bytes)} of ${mb(st.plan.quota_bytes)} used`,
        u.unreachable ? ` (${u.unreachable} storage ${u.unreachable === 1 ? 'unit' : 'units'} not answering)` : ''),
    ];
    if (st.prune_excess_after) {
      kids.push(h('p', { class: 'muted' }, `Recordings beyond the plan are deleted, oldest first, from ${new Date(st.prune_excess_after * 1000).toLocaleString()}.`));
    }
    if (owner && plans.length > 1) {
      const sel = h('select', { name: 'plan', id: 'cloud-plan-select' }, plans.map((p) => h('option', { value: p.id, selected: p.id === st.plan.id }, planText(p))));
      kids.push(form({ class: 'inline' }, async () => {
        if (sel.value === st.plan.id) return;
        const next = await api('PUT', '/me/plan', { plan: sel.value });
        toast(`Cloud storage plan: ${next.plan.name}.`);
        show(next, plans, owner);
      }, field('Change plan', sel), h('button', { type: 'submit', id: 'cloud-plan-save' }, 'Change plan')));
    }
    body.replaceChildren(...kids);
  };
  (async () => {
    try {
      const [st, plans, me] = await Promise.all([api('GET', '/me/plan'), api('GET', '/plans'), api('GET', '/me')]);
      show(st, plans, me.role === 'owner');
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
    }
  })();
  return card;
}
