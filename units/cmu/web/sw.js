// peercam service worker: an offline shell for the installable client (M_CU, H.626.4 6.3.1).
// Pages and scripts are fetched network first (a new CMU brings a new client at once) and
// kept for when the network is gone. The API is never touched: /api/* requests go straight
// to the network, uncached, whatever their method.
// Alarms arrive by Web Push (H.626.4 6.1.9): each shows a notification tagged with the
// alarm's id, and a click focuses the client (or opens it) on that alarm.

const VERSION = '0.1.0';
const CACHE = `peercam-shell-${VERSION}`;
const SHELL = ['/', '/app/app.js', '/app/alarms.js', '/app/alarm-stream.js', '/app/alarm-settings.js', '/app/cloud-plan.js', '/app/live.js', '/app/operator.js', '/app/operator-equipment.js', '/app/operator-users.js', '/app/operator-campaigns.js', '/app/operator-logs.js', '/app/operator-reports.js', '/app/operator-billing.js', '/app/usage.js', '/app/two-factor.js', '/app/shared-clips.js', '/app/style.css', '/app/icon.svg', '/app/icon-maskable.svg', '/manifest.webmanifest'];

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) {
      if (k.startsWith('peercam-shell-') && k !== CACHE) await caches.delete(k);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (ev) => {
  if (ev.data?.type === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  // Only this origin's shell, only GET; never the API, never anything else.
  if (url.origin !== self.location.origin || ev.request.method !== 'GET') return;
  if (url.pathname.startsWith('/api/') || url.pathname === '/api') return;
  if (!SHELL.includes(url.pathname)) return;
  ev.respondWith((async () => {
    try {
      const fresh = await fetch(ev.request, { cache: 'no-cache' });
      if (fresh.ok) {
        const c = await caches.open(CACHE);
        await c.put(url.pathname, fresh.clone());
      }
      return fresh;
    } catch {
      const cached = await caches.match(url.pathname);
      if (cached) return cached;
      throw new Error('offline and not cached');
    }
  })());
});

// H.626.4 6.1.9: an alarm pushed by the CMU (decrypted by the browser): {id, camera,
// camera_name, kind, at_ms, title, body, url}.
self.addEventListener('push', (ev) => {
  let data = {};
  try {
    data = ev.data ? ev.data.json() : {};
  } catch {
    data = { body: ev.data ? ev.data.text() : '' };
  }
  const title = typeof data.title === 'string' && data.title ? data.title : 'peercam alarm';
  // Only a link into this client, never elsewhere.
  const url = typeof data.url === 'string' && data.url.startsWith('/#/') ? data.url : '/#/alarms';
  const options = {
    body: typeof data.body === 'string' ? data.body : '',
    icon: '/app/icon.svg',
    data: { url },
    timestamp: typeof data.at_ms === 'number' ? data.at_ms : Date.now(),
  };
  if (data.id != null) options.tag = String(data.id);
  ev.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (ev) => {
  ev.notification.close();
  const url = new URL(ev.notification.data?.url || '/#/alarms', self.location.origin).href;
  ev.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).origin !== self.location.origin) continue;
      const focused = await w.focus();
      if ('navigate' in focused) await focused.navigate(url).catch(() => {});
      return;
    }
    await self.clients.openWindow(url);
  })());
});
