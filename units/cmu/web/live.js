// Live view over WebRTC, straight from the camera when ICE finds a way, through the MTU's
// TURN relay when it does not (H.626.4 8.3, 8.4). Signalling goes through the CMU:
//   POST /api/v1/devices/{id}/ice[?recorder=]    -> { ice_servers, expires_at, peers }
//   POST /api/v1/devices/{id}/webrtc { offer, max_width?, max_height?, max_fps?, audio? }
//                                    -> { answer, session }
//   POST /api/v1/devices/{id}/sessions { path, connect_ms, bytes, seconds } when the view ends.
// Timing hooks for the benchmark: window.peercam.lastPlay = { clickedAt, connectedAt,
// firstFrameAt, path } (performance.now() milliseconds).
//
// Talk (intercom, H.626.4 6.1.8): with `talk`, the offer's audio is `sendrecv` with no track
// yet; talk.js puts the microphone on it with `setMicrophone` (replaceTrack, no
// renegotiation) while the user talks. The camera answers `sendrecv` only when the user's
// grant holds `talk` and the camera has a speaker; `talkAccepted` tells. One talker at a
// time: on the offer's `talk` data channel the camera sends {"talk":"busy"} when another
// viewer holds its speaker (this one is not heard) and {"talk":"heard"} when it is heard
// again; `talkBusy` and `onTalk` tell.
//
// Playback of recordings (8.7.2.2, 8.7.3) is WebRTC too, from the recorder (NVR or the
// camera's SD card), steered on a data channel: PlaybackSession below.
//   POST /api/v1/devices/{id}/recordings/webrtc { offer, start, recorder? } -> { answer, session }

/** What the path badge says. */
export const PATH_LABEL = { direct: 'Direct', relay: 'Relayed' };

/** Longest wait for ICE gathering before the offer goes out with what was gathered. */
const GATHER_CAP_MS = 3000;
/** Longest wait for the connection once the answer is in. */
const CONNECT_TIMEOUT_MS = 15000;
/** A connected session that receives nothing for this long has stalled (the camera died or
 * the path broke): it reports a drop and the page starts a new one. */
const STALL_MS = 2000;
/** ICE may come back from `disconnected` by itself; after this long it is a drop. */
const DISCONNECTED_GRACE_MS = 2000;
/** How often the statistics are read (bytes for the stall check and `onStats`). */
const STATS_EVERY_MS = 500;

export class LiveSession {
  /**
   * @param {object} o
   * @param {Function} o.api       `api(method, path, body, opts)` of app.js
   * @param {string} o.deviceId
   * @param {HTMLVideoElement} o.video
   * @param {boolean} o.forceRelay  TURN only (`?relay=1`)
   * @param {object} o.request      max_width, max_height, max_fps, audio
   * @param {boolean} [o.talk]      offer the microphone (sendrecv audio) for talk
   * @param {Function} [o.onPath]   called with { shown: 'direct'|'relay', kind, local, remote }
   * @param {Function} [o.onStats]  called with { connect_ms, bytes } every half second
   * @param {Function} [o.onDrop]   called once with 'stalled', 'disconnected' or 'failed' when a
   *                                connected session stops delivering (the caller reconnects)
   */
  constructor(o) {
    Object.assign(this, o);
    this.pc = null;
    this.stream = new MediaStream();
    this.connectMs = null;
    this.startedAt = null;
    this.pathKind = null;
    this.stopped = false;
    this.dropped = false;
    this.timer = null;
    this.graceTimer = null;
  }

  /** Reports, once, that this connected session stopped delivering. */
  drop(reason) {
    if (this.dropped || this.stopped) return;
    this.dropped = true;
    this.onDrop?.(reason);
  }

  async start() {
    const clickedAt = performance.now();
    const mark = { clickedAt, connectedAt: null, firstFrameAt: null, path: null, deviceId: this.deviceId, relayForced: this.forceRelay };
    window.peercam.lastPlay = mark;
    const dev = `/devices/${encodeURIComponent(this.deviceId)}`;
    const iceServers = await iceServersFor(this.api, dev, this.recorder || null);
    if (this.stopped) return;
    if (this.forceRelay && !hasRelay(iceServers)) {
      throw new Error('Relay-only viewing was asked for (?relay=1), but this platform offers no TURN relay for this camera. Remove ?relay=1 from the address and try again.');
    }
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.forceRelay ? 'relay' : 'all' });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    const hearing = this.request.audio !== 'none';
    if (this.talk) {
      this.audioTransceiver = pc.addTransceiver('audio', { direction: hearing ? 'sendrecv' : 'sendonly' });
      this.talkBusy = false;
      const ch = pc.createDataChannel('talk');
      ch.addEventListener('message', (ev) => {
        let m;
        try {
          m = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
        } catch {
          return;
        }
        if (m?.talk === 'busy' || m?.talk === 'heard') {
          this.talkBusy = m.talk === 'busy';
          this.onTalk?.(m.talk);
        }
      });
    } else if (hearing) {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    pc.addEventListener('track', (ev) => {
      this.stream.addTrack(ev.track);
      if (this.video.srcObject !== this.stream) this.video.srcObject = this.stream;
    });
    const connected = new Promise((resolve, reject) => {
      const check = () => {
        const s = pc.connectionState;
        if (s === 'connected') resolve();
        else if (s === 'failed' || s === 'closed') {
          reject(new Error('The connection to the camera failed. Check that the camera is online and try again; on a strict network, add ?relay=1 to the address.'));
        }
      };
      pc.addEventListener('connectionstatechange', check);
      check();
    });
    // Trickle ICE (issue 20): the offer goes at once, with whatever is gathered by then;
    // later candidates and their end follow through the platform once the answer names
    // the session.
    const trickle = new Trickle(this.api, dev, pc);
    this.trickle = trickle;
    await pc.setLocalDescription(await pc.createOffer());
    if (this.stopped) return;
    const body = { offer: pc.localDescription.sdp };
    for (const k of ['max_width', 'max_height', 'max_fps', 'audio']) {
      if (this.request[k] != null) body[k] = this.request[k];
    }
    const r = await this.api('POST', `${dev}/webrtc`, body);
    if (this.stopped) return;
    this.session = r.session;
    await pc.setRemoteDescription({ type: 'answer', sdp: r.answer });
    trickle.start(r.session, body.offer);
    const dir = this.audioTransceiver?.currentDirection;
    this.talkAccepted = dir === 'sendrecv' || dir === 'sendonly';
    await withTimeout(connected, CONNECT_TIMEOUT_MS, 'The camera did not connect within 15 seconds. Check that it is online and try again.');
    mark.connectedAt = performance.now();
    this.connectMs = Math.round(mark.connectedAt - clickedAt);
    this.startedAt = Date.now();
    const path = await selectedPath(pc);
    this.pathKind = path.kind;
    mark.path = path.shown;
    this.onPath?.(path);
    const v = this.video;
    if ('requestVideoFrameCallback' in v) {
      v.requestVideoFrameCallback(() => { mark.firstFrameAt = performance.now(); });
    } else {
      v.addEventListener('playing', () => { mark.firstFrameAt = performance.now(); }, { once: true });
    }
    await v.play().catch(() => {
      // Autoplay refused (sound on without a gesture): the user presses play on the video.
    });
    // After it connected: a failed or long-disconnected connection, or no bytes for
    // STALL_MS, is a drop (issue 20 "instant recovery"; the page starts a new session).
    pc.addEventListener('connectionstatechange', () => {
      const st = pc.connectionState;
      if (st === 'failed') this.drop('failed');
      else if (st === 'disconnected') {
        clearTimeout(this.graceTimer);
        this.graceTimer = setTimeout(() => {
          if (pc.connectionState === 'disconnected') this.drop('disconnected');
        }, DISCONNECTED_GRACE_MS);
      }
    });
    let lastBytes = -1;
    let lastChange = performance.now();
    this.timer = setInterval(async () => {
      const bytes = await bytesReceived(pc).catch(() => lastBytes);
      this.onStats?.({ connect_ms: this.connectMs, bytes });
      const now = performance.now();
      if (bytes !== lastBytes) {
        lastBytes = bytes;
        lastChange = now;
      } else if (now - lastChange >= STALL_MS) {
        this.drop('stalled');
      }
    }, STATS_EVERY_MS);
  }

  /** Whether the session is up and the camera takes the microphone. */
  get canTalk() {
    return !this.stopped && !!this.talkAccepted && this.pc?.connectionState === 'connected';
  }

  /** Sends `track` (a microphone) to the camera, or nothing with `null`. */
  async setMicrophone(track) {
    if (!this.audioTransceiver || this.stopped) return;
    await this.audioTransceiver.sender.replaceTrack(track);
  }

  /** Closes the connection and reports the session (keepalive: the page is going away). */
  async stop(opts = {}) {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.graceTimer);
    const pc = this.pc;
    if (!pc) return;
    const bytes = await bytesReceived(pc).catch(() => 0);
    pc.close();
    this.stream.getTracks().forEach((t) => t.stop());
    if (this.connectMs == null || !this.pathKind) return;
    const report = {
      path: this.pathKind,
      connect_ms: this.connectMs,
      bytes,
      seconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
    await this.api('POST', `/devices/${encodeURIComponent(this.deviceId)}/sessions`, report, { keepalive: !!opts.keepalive })
      .catch((e) => console.warn('session report failed', e));
  }
}

/** Candidates sent in one trickle message, at most (the platform takes 16). */
const TRICKLE_BATCH = 16;

/**
 * Trickle ICE for a live view (issue 20, RFC 8838): collects the browser's candidates from
 * the moment the offer is made; once the answer names the session, sends those the offer
 * did not carry, then each new one, and the end of them, to
 * `POST .../webrtc/{session}/candidates`. Candidates gathered close together go in one
 * message. A platform or camera that does not take them (an older one) answers an error:
 * trickling stops there, and ICE goes on with what the offer had and what the camera learns
 * from the browser's checks.
 */
class Trickle {
  constructor(api, dev, pc) {
    this.api = api;
    this.dev = dev;
    this.queue = [];
    this.end = false;
    this.session = null;
    this.off = false;
    this.sending = false;
    this.sent = 0;
    pc.addEventListener('icecandidate', (ev) => {
      const c = ev.candidate;
      if (!c || !c.candidate) {
        this.end = true;
      } else if (useful(c)) {
        this.queue.push(c.candidate.replace(/^a=/, ''));
      }
      this.flush();
    });
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        this.end = true;
        this.flush();
      }
    });
  }

  /** The answer is in: send what the offer `sdp` did not carry, and what comes next. */
  start(session, sdp) {
    this.session = session;
    const inOffer = new Set((sdp ?? '').split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2)));
    this.queue = this.queue.filter((c) => !inOffer.has(c));
    this.flush();
  }

  async flush() {
    if (this.off || this.session == null || this.sending) return;
    if (this.queue.length === 0 && (!this.end || this.endSent)) return;
    this.sending = true;
    try {
      // Candidates that arrive while one message is on its way go in the next.
      while (!this.off && (this.queue.length > 0 || (this.end && !this.endSent))) {
        const candidates = this.queue.splice(0, TRICKLE_BATCH);
        const end = this.end && this.queue.length === 0;
        const url = `${this.dev}/webrtc/${encodeURIComponent(this.session)}/candidates`;
        await this.api('POST', url, { candidates, end });
        this.sent += candidates.length;
        if (end) this.endSent = true;
      }
    } catch (e) {
      this.off = true;
      console.info('trickle ICE not taken; going on without it', e?.message ?? e);
    } finally {
      this.sending = false;
    }
  }
}

/** Whether the camera can use candidate `c`: UDP, with an address (not an mDNS name). */
function useful(c) {
  const proto = (c.protocol ?? '').toLowerCase();
  const addr = c.address ?? '';
  return proto === 'udp' && addr !== '' && !addr.endsWith('.local');
}

/**
 * The ICE servers of `POST .../ice` as RTCPeerConnection wants them; for a playback,
 * `recorder` scopes the TURN permission to the recorder's addresses (8.3).
 */
async function iceServersFor(api, dev, recorder) {
  const q = recorder ? `?recorder=${encodeURIComponent(recorder)}` : '';
  const ice = await api('POST', `${dev}/ice${q}`);
  return ice.ice_servers.map((s) => {
    const out = { urls: s.urls };
    if (s.username != null) out.username = s.username;
    if (s.credential != null) out.credential = s.credential;
    return out;
  });
}

/** Whether any of `iceServers` is a TURN relay. */
function hasRelay(iceServers) {
  return iceServers.some((s) => s.urls.some((u) => /^turns?:/.test(u)));
}

/** RFC 3339 in UTC without fractions, as the API takes it. */
export const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * A recording played over WebRTC from its recorder (docs/protocol.md "WebRTC for
 * browsers", Playback). Controls are JSON texts on the data channel; the recorder answers
 * each, and every 250 ms, with a status `{pos_ms, scale, state, error?}`; an export comes
 * back on the same channel as a `start` notice, binary chunks and `done` (or `error`).
 */
export class PlaybackSession {
  /**
   * @param {object} o
   * @param {Function} o.api          `api(method, path, body)` of app.js
   * @param {string} o.deviceId       the camera
   * @param {string} [o.recorder]     `sd`, an NVR id, or empty for the platform's choice
   * @param {HTMLVideoElement} o.video
   * @param {boolean} [o.forceRelay]
   * @param {Function} [o.onStatus]   called with every status
   * @param {Function} [o.onClose]    called once when the channel or connection ends
   */
  constructor(o) {
    Object.assign(this, o);
    this.pc = null;
    this.channel = null;
    this.stream = new MediaStream();
    this.stopped = false;
    this.status = null;
    this.exporting = null;
  }

  /** Connects and starts playing at `startMs` (Unix ms). */
  async start(startMs) {
    const dev = `/devices/${encodeURIComponent(this.deviceId)}`;
    const iceServers = await iceServersFor(this.api, dev, this.recorder || null);
    if (this.stopped) return;
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.forceRelay ? 'relay' : 'all' });
    this.pc = pc;
    // The channel must be in the offer: the recorder refuses an offer without one.
    const ch = pc.createDataChannel('control');
    ch.binaryType = 'arraybuffer';
    this.channel = ch;
    pc.addTransceiver('video', { direction: 'recvonly' });
    // The recorded sound, sent at 1x forward only (the recorder is silent at other speeds).
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (ev) => {
      this.stream.addTrack(ev.track);
      if (this.video.srcObject !== this.stream) this.video.srcObject = this.stream;
    });
    ch.addEventListener('message', (ev) => this.onMessage(ev.data));
    const opened = new Promise((resolve, reject) => {
      ch.addEventListener('open', resolve, { once: true });
      ch.addEventListener('close', () => reject(new Error('The recorder closed the connection.')), { once: true });
    });
    const failed = new Promise((_, reject) => {
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed') {
          reject(new Error('The connection to the recorder failed. Check that it is online and try again; on a strict network, add ?relay=1 to the address.'));
        }
      });
    });
    failed.catch(() => {});
    ch.addEventListener('close', () => this.closed());
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.closed();
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_CAP_MS, hasRelay(iceServers));
    if (this.stopped) return;
    const body = { offer: pc.localDescription.sdp, start: rfc3339(startMs) };
    if (this.recorder) body.recorder = this.recorder;
    const r = await this.api('POST', `${dev}/recordings/webrtc`, body);
    if (this.stopped) return;
    this.session = r.session;
    await pc.setRemoteDescription({ type: 'answer', sdp: r.answer });
    await withTimeout(Promise.race([opened, failed]), CONNECT_TIMEOUT_MS, 'The recorder did not connect within 15 seconds. Check that it is online and try again.');
    await this.video.play().catch(() => {});
  }

  get open() {
    return !this.stopped && this.channel?.readyState === 'open';
  }

  /** Sends one control (`{op: ...}`); false when the channel is not open. */
  send(control) {
    if (!this.open) return false;
    this.channel.send(JSON.stringify(control));
    return true;
  }

  onMessage(data) {
    if (typeof data !== 'string') {
      const x = this.exporting;
      if (x) {
        x.chunks.push(data);
        x.received += data.byteLength;
        x.onProgress?.(x.received, x.bytes);
      }
      return;
    }
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m.export) {
      this.onExportNotice(m);
      return;
    }
    if (typeof m.pos_ms === 'number') {
      this.status = m;
      this.onStatus?.(m);
    }
  }

  /**
   * Asks for `[fromMs, toMs)` as an MP4 on the data channel; resolves to
   * `{ blob, name, frames, bytes }`. `onProgress(received, total)` follows the transfer.
   */
  export(fromMs, toMs, onProgress) {
    if (this.exporting) return Promise.reject(new Error('An export is already running. Wait for it to finish.'));
    return new Promise((resolve, reject) => {
      this.exporting = { chunks: [], received: 0, bytes: null, name: null, frames: null, onProgress, resolve, reject };
      if (!this.send({ op: 'export', from_ms: Math.round(fromMs), to_ms: Math.round(toMs) })) {
        this.exporting = null;
        reject(new Error('Not connected to the recorder. Press Play, then export again.'));
      }
    });
  }

  onExportNotice(m) {
    const x = this.exporting;
    if (!x) return;
    if (m.export === 'start') {
      x.bytes = m.bytes ?? null;
      x.name = m.name ?? 'recording.mp4';
      x.frames = m.frames ?? null;
      x.chunks = [];
      x.received = 0;
      x.onProgress?.(0, x.bytes);
    } else if (m.export === 'done') {
      this.exporting = null;
      if (x.bytes != null && x.received !== x.bytes) {
        x.reject(new Error(`The file arrived incomplete (${x.received} of ${x.bytes} bytes). Export again.`));
        return;
      }
      x.resolve({ blob: new Blob(x.chunks, { type: 'video/mp4' }), name: x.name, frames: x.frames, bytes: x.received });
    } else if (m.export === 'error') {
      this.exporting = null;
      x.reject(new Error(m.message || 'The recorder could not export that range.'));
    }
  }

  closed() {
    if (this.closedOnce) return;
    this.closedOnce = true;
    if (this.exporting) {
      this.exporting.reject(new Error('The connection to the recorder ended during the export. Export again.'));
      this.exporting = null;
    }
    if (!this.stopped) this.onClose?.();
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.channel?.close();
    } catch {
      // Already closed.
    }
    this.pc?.close();
    this.stream.getTracks().forEach((t) => t.stop());
    if (this.exporting) {
      this.exporting.reject(new Error('Playback stopped during the export.'));
      this.exporting = null;
    }
  }
}

/**
 * Resolves when ICE gathering completes; when a relayed candidate is wanted, 50 ms after the
 * first one arrives (it is the last kind to come, and browsers keep "gathering" long after
 * on networks that drop UDP); at the latest after `capMs` with what was gathered. For a
 * playback (the live view trickles, see Trickle): the offer is not trickled, so a browser behind a NAT that drops UDP must put its TCP-relayed
 * candidate in it: the camera behind its own NAT reaches the relay only by sending to it.
 */
function gathered(pc, capMs, wantRelay) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    let grace = null;
    const done = () => {
      clearTimeout(t);
      clearTimeout(grace);
      pc.removeEventListener('icegatheringstatechange', onChange);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onChange = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (ev) => {
      if (wantRelay && grace == null && ev.candidate && ev.candidate.type === 'relay') {
        grace = setTimeout(done, 50);
      }
    };
    const t = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', onChange);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

function withTimeout(p, ms, message) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(message)), ms); })])
    .finally(() => clearTimeout(t));
}

/** `addr:port` and `port` of each host candidate in an SDP. */
function hostCandidates(sdp) {
  const seen = new Set();
  for (const line of (sdp ?? '').split(/\r?\n/)) {
    const m = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) (\d+) typ host\b/i.exec(line);
    if (m) {
      seen.add(`${m[1]}:${m[2]}`);
      seen.add(`:${m[2]}`);
      // An mDNS name (`<uuid>.local`) hides the address; the port still ties the check to it.
      if (m[1].endsWith('.local')) seen.add(`mdns:${m[2]}`);
    }
  }
  return seen;
}

/**
 * A candidate's type for the path report. A peer-reflexive candidate is learned from a
 * connectivity check that arrived before (or instead of) the signalled candidate; when it has
 * the address and port of a host candidate of that side, no NAT translated it and it counts
 * as `host` (on a LAN or loopback the checks often race the signalling, and a host candidate
 * hidden behind an mDNS name is only ever seen this way). Where the address is hidden, the
 * port decides.
 */
function effectiveType(c, hosts) {
  const t = c?.candidateType;
  if (t !== 'prflx') return t;
  const addr = c.address ?? c.ip;
  const known = addr ? hosts.has(`${addr}:${c.port}`) : hosts.has(`:${c.port}`);
  if (known || hosts.has(`mdns:${c.port}`)) return 'host';
  return t;
}

/**
 * The selected candidate pair: relayed if our side is a TURN relay candidate (or the far side
 * is one), else direct. `kind` is the platform's path name for the session report: `relay`,
 * `lan` (host to host) or `punched` (through a NAT, server-reflexive or peer-reflexive).
 */
export async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.selected || s.nominated)) pair ??= s;
    });
  }
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  const lt = effectiveType(local, hostCandidates(pc.localDescription?.sdp));
  const rt = effectiveType(remote, hostCandidates(pc.remoteDescription?.sdp));
  let kind;
  if (lt === 'relay' || rt === 'relay') kind = 'relay';
  else if (lt === 'host' && rt === 'host') kind = 'lan';
  else kind = 'punched';
  return {
    shown: lt === 'relay' || rt === 'relay' ? 'relay' : 'direct',
    kind,
    local: lt ?? 'unknown',
    remote: rt ?? 'unknown',
  };
}

async function bytesReceived(pc) {
  const stats = await pc.getStats();
  let n = 0;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp') n += s.bytesReceived ?? 0;
  });
  return n;
}

/** An element with attributes and children (text or elements). */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
  e.append(...kids);
  return e;
}

/** Whether a key press belongs to a form field rather than to the page. */
function typing(target) {
  return target instanceof Element && target.closest('input, textarea, select, [contenteditable]') != null;
}

/**
 * The talk controls of the live view (intercom, H.626.4 6.1.8), for a user whose scopes on
 * the device hold `talk`: "Hold to talk" (pointer held down, or Space held anywhere on the
 * page but in a form field) and a "Talk" toggle. The microphone is asked for on first use
 * only, and kept open until the page is left, so a press starts sending at once: it is put
 * on the live session's audio with replaceTrack and taken off on release (no renegotiation,
 * nothing is sent while not talking).
 *
 * @param {Function} getLive  returns the current LiveSession, or null
 * @returns {HTMLElement}
 */
/** What the talk status says while another viewer holds the camera's speaker. */
const ANOTHER_TALKS = 'Another viewer is talking to the camera: you are not heard until they stop.';

export function talkPanel(getLive) {
  const holdBtn = el('button', { type: 'button', id: 'talk-hold', class: 'talk', 'aria-label': 'Hold to talk (or hold Space)' }, 'Hold to talk');
  const toggleBtn = el('button', { type: 'button', id: 'talk-toggle', 'aria-pressed': 'false' }, 'Talk');
  const status = el('p', { id: 'talk-status', class: 'muted', role: 'status', 'aria-live': 'polite' }, 'Press Play, then hold the button (or Space) to talk to the camera.');
  const panel = el('section', { class: 'talk-panel', 'aria-label': 'Talk to the camera' }, el('div', { class: 'live-bar' }, holdBtn, toggleBtn), status);
  let mic = null;
  let micPromise = null;
  let want = null; // 'hold' | 'toggle' | null
  let talkingOn = null;

  const show = (text) => { status.textContent = text; };
  const microphone = () => {
    if (mic && mic.readyState === 'live') return Promise.resolve(mic);
    micPromise ??= navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } })
      .then((s) => { mic = s.getAudioTracks()[0]; return mic; })
      .finally(() => { micPromise = null; });
    return micPromise;
  };
  const render = () => {
    const on = talkingOn != null;
    holdBtn.classList.toggle('active', on && want === 'hold');
    toggleBtn.setAttribute('aria-pressed', String(on && want === 'toggle'));
    toggleBtn.textContent = on && want === 'toggle' ? 'Stop talking' : 'Talk';
  };
  const start = async (how) => {
    if (want) return;
    want = how;
    const live = getLive();
    if (!live?.canTalk) {
      want = null;
      render();
      if (!live || live.stopped || live.talkAccepted == null) show('Press Play first: talk goes with the live view.');
      else if (!live.talkAccepted) show('This camera does not accept talk (it has no speaker, or your access does not include talk).');
      else show('Not connected to the camera. Press Play, then try again.');
      return;
    }
    let track;
    try {
      track = await microphone();
    } catch (e) {
      want = null;
      render();
      show(e?.name === 'NotAllowedError' || e?.name === 'SecurityError'
        ? 'Microphone blocked. Allow the microphone for this site in the browser, then try again.'
        : `No microphone: ${e?.message ?? e}. Connect one, then try again.`);
      return;
    }
    if (want !== how) return; // Released while the browser asked.
    try {
      await live.setMicrophone(track);
    } catch (e) {
      want = null;
      render();
      show(`Talk failed: ${e?.message ?? e}`);
      return;
    }
    talkingOn = live;
    window.peercam.talk = { startedAt: performance.now() };
    render();
    // One talker at a time: the camera says whether this viewer is heard.
    live.onTalk = (what) => {
      if (talkingOn !== live) return;
      show(what === 'busy' ? ANOTHER_TALKS : 'Talking…');
    };
    show(live.talkBusy ? ANOTHER_TALKS : 'Talking…');
  };
  const stop = async (how) => {
    if (want !== how) return;
    want = null;
    const live = talkingOn;
    talkingOn = null;
    render();
    await live?.setMicrophone(null).catch(() => {});
    if (window.peercam.talk) window.peercam.talk.stoppedAt = performance.now();
    show('Not talking. Hold the button (or Space) to talk.');
  };

  holdBtn.addEventListener('pointerdown', (ev) => {
    ev.preventDefault();
    try {
      holdBtn.setPointerCapture?.(ev.pointerId);
    } catch {
      // Not an active pointer (a synthetic event): release comes on pointerup anyway.
    }
    start('hold');
  });
  for (const t of ['pointerup', 'pointercancel', 'lostpointercapture']) holdBtn.addEventListener(t, () => stop('hold'));
  holdBtn.addEventListener('contextmenu', (ev) => ev.preventDefault());
  toggleBtn.addEventListener('click', () => (want === 'toggle' ? stop('toggle') : start('toggle')));

  const keys = new AbortController();
  const gone = () => {
    if (panel.isConnected) return false;
    keys.abort();
    mic?.stop();
    return true;
  };
  window.addEventListener('keydown', (ev) => {
    if (gone() || ev.code !== 'Space' || ev.repeat || typing(ev.target)) return;
    if (ev.target instanceof HTMLButtonElement && ev.target !== holdBtn) return;
    ev.preventDefault();
    start('hold');
  }, { signal: keys.signal });
  window.addEventListener('keyup', (ev) => {
    if (gone() || ev.code !== 'Space') return;
    if (want === 'hold') ev.preventDefault();
    stop('hold');
  }, { signal: keys.signal });
  // The live view ends (Stop, or the connection drops): so does the talk.
  const watch = setInterval(() => {
    if (gone()) {
      clearInterval(watch);
      return;
    }
    if (talkingOn && !talkingOn.canTalk) {
      want = null;
      talkingOn = null;
      render();
      show('Talk ended: the live view stopped.');
    }
  }, 250);
  return panel;
}
