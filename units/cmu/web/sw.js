// peercam service worker: an offline shell for the installable client (M_CU, H.626.4 6.3.1).
// Pages and scripts are fetched network first (a new CMU brings a new client at once) and
// kept for when the network is gone. The API is never touched: /api/* requests go straight
// to the network, uncached, whatever their method.

const VERSION = '0.1.0';
const CACHE = `peercam-shell-${VERSION}`;
const SHELL = ['/', '/app/app.js', '/app/alarms.js', '/app/live.js', '/app/style.css', '/app/icon.svg', '/app/icon-maskable.svg', '/manifest.webmanifest'];

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
