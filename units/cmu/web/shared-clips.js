// Shared clip links (issue 17 item 9, H.626.4 8.7.1 download): the owner's links to clips of
// its cameras, each with its state and uses, the link to copy and a Revoke button
// (`GET /api/v1/clips`, `DELETE /api/v1/clips/{id}`). Links are made on the playback page
// ("Share clip", `shareClip` below) or with `peercam cu clip share`: the client exports the
// range from its recorder, asks `POST /api/v1/devices/{id}/clips {from, to, recorder?,
// expires_in_s}` and uploads the MP4 to the camera's cloud storage unit (`PUT upload.url`
// with `Authorization: Bearer <upload.grant>`; the CS allows it from any origin, and the
// page's policy names the CS's origin in `connect-src`).

import { api, h, messageOf, toast } from './app.js';

/** The longest clip a link may hold (the CMU refuses longer ranges). */
export const CLIP_MAX_MS = 15 * 60_000;

/** The expiry choices: seconds, label; 7 days is the default. */
export const CLIP_EXPIRIES = [[86_400, '1 day'], [7 * 86_400, '7 days'], [30 * 86_400, '30 days']];

/** Unix ms as RFC 3339 UTC, whole seconds as `...Z`, as the CLI sends them. */
const utc = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

/**
 * Uploads the clip's MP4 with XMLHttpRequest (its upload reports progress, `fetch` does not):
 * `PUT upload.url`, `Authorization: Bearer <grant>`, `Content-Type: video/mp4`.
 */
function uploadClip(upload, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', upload.url);
    x.setRequestHeader('Authorization', `Bearer ${upload.grant}`);
    x.setRequestHeader('Content-Type', 'video/mp4');
    x.upload.addEventListener('progress', (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : blob.size));
    x.addEventListener('load', () => {
      if (x.status >= 200 && x.status < 300) {
        resolve();
        return;
      }
      let why = '';
      try {
        why = JSON.parse(x.responseText).message ?? '';
      } catch {
        // Not the CS's JSON refusal: the status says enough.
      }
      reject(new Error(`The cloud storage refused the clip (HTTP ${x.status}${why ? `: ${why}` : ''}).`));
    });
    x.addEventListener('error', () => reject(new Error('The clip could not be sent to the cloud storage unit (network error). Check the connection and try again.')));
    x.addEventListener('abort', () => reject(new Error('The upload was stopped.')));
    x.send(blob);
  });
}

/**
 * Makes a link to the clip `blob` (already exported) of `camera` from `fromMs` to `toMs`:
 * asks the CMU for the link and where to upload, then uploads. A failed upload revokes the
 * link it made (as the CLI does), so no link to nothing is left. Resolves to the clip
 * (`{id, link, expires_at, ...}`); rejects with an Error whose message is a sentence.
 */
export async function shareClip({ camera, recorder, fromMs, toMs, expiresInS, blob, onProgress }) {
  const req = { from: utc(fromMs), to: utc(toMs), expires_in_s: expiresInS };
  if (recorder) req.recorder = recorder;
  const made = await api('POST', `/devices/${encodeURIComponent(camera)}/clips`, req);
  try {
    if (made.upload.max_bytes && blob.size > made.upload.max_bytes) {
      throw new Error(`The clip is too large to share (${blob.size} bytes; at most ${made.upload.max_bytes}). Choose a shorter range.`);
    }
    await uploadClip(made.upload, blob, onProgress);
  } catch (e) {
    await api('DELETE', `/clips/${encodeURIComponent(made.clip.id)}`).catch(() => {});
    // An ApiError (from the CMU) has a status; the upload's errors are sentences already.
    throw new Error(`${'status' in e ? messageOf(e) : e.message} No link was kept.`);
  }
  return made.clip;
}

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
      : h('p', { class: 'muted' }, 'No clip of this camera is shared. Choose a range and press Share clip, or use: peercam cu clip share.'));
  };
  // The playback page reloads the list after it made a link.
  card.reload = () => load().catch((e) => toast(messageOf(e)));
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
