// The live page's WebRTC client against a stand-in camera, with no server: the client's
// files are served from units/cmu/web by the browser's request routing, the API is answered
// here, and POST /devices/{id}/webrtc is answered by a second page that plays the camera (a
// canvas stream whose picture follows the PTZ orders). Checks the client side of the WebRTC
// contract (docs/web-client.md) while the camera side is not there: offer with recvonly
// transceivers, answer applied, path shown, first frame timed, frames advance and are not
// blank, PTZ moves the picture, snapshot PNG, WebM recording, the session report's body.
//
// Inputs: PEERCAM_WEB_PLAYS (timed plays, default 10), PEERCAM_WEB_SHOTS (optional).
// Output: one JSON line; exit status 1 on failure.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkPlaying, expect, launch, newUser, percentile, run, shots, step } from './lib.mjs';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '../units/cmu/web');
const ORIGIN = 'https://peercam.test';
const FILES = {
  '/': ['index.html', 'text/html'],
  '/app/app.js': ['app.js', 'text/javascript'],
  '/app/alarms.js': ['alarms.js', 'text/javascript'],
  '/app/alarm-stream.js': ['alarm-stream.js', 'text/javascript'],
  '/app/alarm-settings.js': ['alarm-settings.js', 'text/javascript'],
  '/app/cloud-plan.js': ['cloud-plan.js', 'text/javascript'],
  '/app/shared-clips.js': ['shared-clips.js', 'text/javascript'],
  '/app/live.js': ['live.js', 'text/javascript'],
  '/app/operator.js': ['operator.js', 'text/javascript'],
  '/app/operator-equipment.js': ['operator-equipment.js', 'text/javascript'],
  '/app/operator-users.js': ['operator-users.js', 'text/javascript'],
  '/app/operator-campaigns.js': ['operator-campaigns.js', 'text/javascript'],
  '/app/operator-logs.js': ['operator-logs.js', 'text/javascript'],
  '/app/operator-reports.js': ['operator-reports.js', 'text/javascript'],
  '/app/operator-billing.js': ['operator-billing.js', 'text/javascript'],
  '/app/usage.js': ['usage.js', 'text/javascript'],
  '/app/two-factor.js': ['two-factor.js', 'text/javascript'],
  '/app/style.css': ['style.css', 'text/css'],
  '/app/icon.svg': ['icon.svg', 'image/svg+xml'],
  '/app/icon-maskable.svg': ['icon-maskable.svg', 'image/svg+xml'],
  '/manifest.webmanifest': ['manifest.webmanifest', 'application/manifest+json'],
  '/sw.js': ['sw.js', 'text/javascript'],
};
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

await run(async (result) => {
  const plays = Number(process.env.PEERCAM_WEB_PLAYS ?? '10');
  const browser = await launch();
  result.browser = browser.version();
  try {
    // The camera: a canvas with a moving scene, panned by PTZ orders.
    const camCtx = await browser.newContext();
    const cam = await camCtx.newPage();
    await cam.setContent('<canvas width="640" height="360"></canvas>');
    await cam.evaluate(() => {
      const c = document.querySelector('canvas');
      const g = c.getContext('2d');
      window.pan = 0;
      let n = 0;
      setInterval(() => {
        n++;
        const off = Math.round(window.pan * 300);
        for (let x = 0; x < 8; x++) {
          g.fillStyle = `hsl(${((x * 45 + off) % 360 + 360) % 360} 80% ${30 + x * 6}%)`;
          g.fillRect(x * 80, 0, 80, 360);
        }
        g.fillStyle = '#fff';
        g.fillRect((n * 4) % 640, 160, 40, 40);
      }, 40);
      window.stream = c.captureStream(25);
      window.answer = async (offer) => {
        const pc = new RTCPeerConnection();
        for (const t of window.stream.getTracks()) pc.addTrack(t, window.stream);
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
        await new Promise((r) => {
          if (pc.iceGatheringState === 'complete') r();
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
          setTimeout(r, 1500);
        });
        (window.pcs ??= []).push(pc);
        return pc.localDescription.sdp;
      };
    });

    const { context, page, problems } = await newUser(browser);
    const seen = { offers: [], reports: [], webrtcBodies: [], trickles: [] };
    const device = { id: 'pc-loopback0000001', name: 'Stand-in', kind: 'pu', vendor: 'test', model: 'canvas', online: true, relation: 'owner', scopes: ['live', 'playback', 'ptz', 'talk', 'config'] };
    const ptz = { pan: 0, tilt: 0, zoom: 1, moving: false, presets: [] };
    let moveTimer = null;
    const json = (route, body, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
    await context.route(`${ORIGIN}/**`, async (route) => {
      const req = route.request();
      const url = new URL(req.url());
      const file = FILES[url.pathname];
      if (file) {
        return route.fulfill({ status: 200, contentType: file[1], headers: { 'content-security-policy': CSP }, body: readFileSync(join(WEB, file[0])) });
      }
      const p = url.pathname.replace('/api/v1', '');
      const dev = `/devices/${device.id}`;
      if (p === '/client/update') return json(route, { update_available: false });
      if (p === dev) return json(route, device);
      if (p === `${dev}/ice`) return json(route, { ice_servers: [], expires_at: Date.now() / 1000 + 600, peers: ['127.0.0.1'] });
      if (p === `${dev}/webrtc`) {
        const body = req.postDataJSON();
        seen.webrtcBodies.push(Object.keys(body).sort());
        seen.offers.push(body.offer);
        const answer = await cam.evaluate((o) => window.answer(o), body.offer);
        return json(route, { answer, session: `s${seen.offers.length}` });
      }
      // Trickle ICE (issue 20): the client's later candidates go to the stand-in's peer.
      const trickled = p.startsWith(`${dev}/webrtc/`) && /^\/s(\d+)\/candidates$/.exec(p.slice(`${dev}/webrtc`.length));
      if (trickled) {
        const body = req.postDataJSON();
        seen.trickles.push(body);
        await cam.evaluate(async ([i, cs]) => {
          const pc = window.pcs[i];
          for (const c of cs) await pc.addIceCandidate({ candidate: c, sdpMLineIndex: 0 }).catch(() => {});
        }, [Number(trickled[1]) - 1, body.candidates]);
        return route.fulfill({ status: 204 });
      }
      if (p === `${dev}/sessions`) {
        seen.reports.push(req.postDataJSON());
        return route.fulfill({ status: 204 });
      }
      if (p === `${dev}/ptz`) {
        const cmd = req.postDataJSON();
        clearInterval(moveTimer);
        if (cmd.op === 'move') {
          ptz.moving = true;
          moveTimer = setInterval(() => {
            ptz.pan = Math.max(-1, Math.min(1, ptz.pan + cmd.pan * 0.05));
            cam.evaluate((v) => { window.pan = v; }, ptz.pan).catch(() => {});
          }, 50);
        } else ptz.moving = false;
        return json(route, ptz);
      }
      return json(route, { error: 'no_route', message: `not in this stand-in: ${req.method()} ${p}` }, 404);
    });
    await context.addInitScript(() => {
      localStorage.setItem('peercam.session', JSON.stringify({ token: 'pcs_test', expires_at: Date.now() / 1000 + 3600, user: { id: 1, role: 'owner', login: '+15550000000', status: 'active' } }));
    });
    await page.goto(`${ORIGIN}/#/device/${device.id}/live`);
    await page.getByRole('heading', { level: 1, name: 'Stand-in: live view' }).waitFor();
    const shotDir = process.env.PEERCAM_WEB_SHOTS;
    result.check = await checkPlaying(page, { shot: async (p, name) => { result.screenshots = await shots(p, shotDir, `${name}-loopback`); } });
    step(result, 'checked');
    const offer = seen.offers[0];
    expect(/m=video[^]*a=recvonly/.test(offer) && /m=audio/.test(offer), 'the offer receives video and audio');
    expect(seen.trickles.some((t) => t.end === true), `the candidates and their end follow the offer (trickle ICE), got ${JSON.stringify(seen.trickles)}`);
    expect(seen.trickles.every((t) => Object.keys(t).sort().join() === 'candidates,end' && t.candidates.length <= 16), 'each trickle body has exactly the fields the CMU accepts');
    result.webrtc_body = seen.webrtcBodies[0];
    await page.waitForTimeout(300);
    result.report = seen.reports[0];
    expect(result.report && ['lan', 'punched', 'relay'].includes(result.report.path) && result.report.connect_ms > 0 && result.report.bytes > 0, `a session report, got ${JSON.stringify(result.report)}`);
    expect(Object.keys(result.report).sort().join() === 'bytes,connect_ms,path,seconds', 'the report has exactly the fields the CMU accepts');
    const firstFrame = [];
    for (let i = 0; i < plays; i++) {
      await page.getByRole('button', { name: 'Play', exact: true }).click();
      await page.waitForFunction(() => window.peercam.lastPlay?.firstFrameAt != null, null, { timeout: 10000 });
      const lp = await page.evaluate(() => window.peercam.lastPlay);
      firstFrame.push(lp.firstFrameAt - lp.clickedAt);
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      await page.getByText('Stopped.', { exact: false }).waitFor();
    }
    if (plays) {
      result.first_frame_ms = { p50: Math.round(percentile(firstFrame, 50)), p95: Math.round(percentile(firstFrame, 95)) };
    }
    result.problems = problems;
    expect(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
});
