// Shared clip links (issue 17 item 9, H.626.4 8.7.1 download): the owner's links to clips of
// its cameras, each with its state and uses, the link to copy and a Revoke button
// (`GET /api/v1/clips`, `DELETE /api/v1/clips/{id}`). Links are made with `peercam cu clip
// share` (the client exports the range and uploads it to cloud storage).

import { api, h, messageOf, toast } from './app.js';

const when = (s) => new Date(s * 1000).toLocaleString();

/** The "Shared clips" card for `camera` (owners only); `id` attributes are for the tests. */
export function sharedClipsCard(camera) {
  const body = h('div', { id: 'shared-clips' }, h('p', { class: 'muted' }, 'Loading…'));
  const card = h('section', { class: 'card', 'aria-labelledby': 'clips-h' }, h('h2', { id: 'clips-h' }, 'Shared clips'), body);
  const row = (c) => {
    const link = h('input', { type: 'text', readonly: true, value: c.link, 'aria-label': 'Link', class: 'clip-link' });
    const kids = [
      h('p', {}, h('strong', {}, c.label || 'Clip'), ` ${new Date(c.from_ms).toLocaleTimeString()} – ${new Date(c.to_ms).toLocaleTimeString()}`),
      h('p', { class: 'muted' }, `${c.state === 'active' ? `Works until ${when(c.expires_at)}` : c.state === 'revoked' ? 'Revoked' : 'Expired'} · ${c.views} views, ${c.downloads} downloads`),
    ];
    if (c.state === 'active') {
      kids.push(link, h('button', {
        type: 'button',
        class: 'danger',
        'data-clip': c.id,
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api('DELETE', `/clips/${encodeURIComponent(c.id)}`);
            toast('The link no longer works.');
            await load();
          } catch (e) {
            ev.target.disabled = false;
            toast(messageOf(e));
          }
        },
      }, 'Revoke'));
    }
    return h('li', { class: `clip clip-${c.state}` }, ...kids);
  };
  const load = async () => {
    const all = (await api('GET', '/clips')).filter((c) => c.camera === camera);
    body.replaceChildren(all.length
      ? h('ul', { class: 'plain' }, all.map(row))
      : h('p', { class: 'muted' }, 'No clip of this camera is shared. Share one with: peercam cu clip share.'));
  };
  (async () => {
    try {
      const me = await api('GET', '/me');
      if (me.role !== 'owner') {
        card.hidden = true;
        return;
      }
      await load();
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
    }
  })();
  return card;
}
