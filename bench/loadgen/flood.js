// An abusive client for bench/floods.py: floods a server with one kind of bad traffic for a fixed time, over
// raw WebSockets (`ws`) and HTTP, from one or several loopback source addresses (127.x.y.z are all loopback
// on Linux; the server sees each as a different client address), then prints one JSON line with what it
// actually sent and what the server answered.
//
//   node bench/loadgen/flood.js --url http://127.0.0.1:PORT --kind events --duration 10
//        [--addresses 127.0.0.2 | 127.0.1.1-100] [--workers 2] [--tokens-file F --first-user N]
//        [--sessions 3000] [--concurrency 100]
//
// Kinds (each worker loops until --duration is over; every loop is bounded by it):
//   events   --workers authenticated sockets, each sending `42/dashboard,["x",{}]` as fast as the socket
//            takes them (kept under 1 MiB buffered); a closed socket reconnects (a new handshake).
//   refused  --workers open engine.io sessions, each sending CONNECTs with a bad token as fast as it can;
//            a closed session is reopened.
//   pending  keeps up to --sessions engine.io sessions open that never CONNECT (answering pings); a session
//            the server closes is reopened.
//   binary   --workers authenticated sockets, each sending a binary-event header announcing 999,999
//            attachments, then 15,000-byte attachments (under the 16 KiB message limit) that never complete.
//   closeconnect  --sessions polling sessions (at most --concurrency at once), each: GET handshake, then one
//            POST with CLOSE and CONNECT (valid token) in one payload: "1\x1e40/dashboard,{token}".
//   slow     one authenticated socket for user --first-user that stops reading (its TCP socket paused)
//            for --duration; then resumes and reports whether the server had closed it.
//   connect  --sessions valid connects (users from --first-user, --concurrency at once), held until
//            --duration is over, then closed. Connect latencies and failures by reason.
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const WebSocket = require("ws");
const common = require("./common.js");

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const url = new URL(arg("url"));
const kind = arg("kind");
const durationMs = Number(arg("duration", 10)) * 1000;
const workers = Number(arg("workers", 2));
const sessionsTarget = Number(arg("sessions", 3000));
const concurrency = Number(arg("concurrency", 100));
const firstUser = Number(arg("first-user", 0));
const tokens = arg("tokens-file") ? JSON.parse(fs.readFileSync(arg("tokens-file"), "utf8")) : [];
const addresses = parseAddresses(arg("addresses", "127.0.0.2"));

function parseAddresses(spec) {
  const out = [];
  for (const part of spec.split(",")) {
    const m = part.match(/^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/);
    if (m) for (let i = Number(m[2]); i <= Number(m[3]); i++) out.push(m[1] + i);
    else out.push(part);
  }
  return out;
}

let nextAddress = 0;
const address = () => addresses[nextAddress++ % addresses.length];
const t0 = common.nowMs();
const end = t0 + durationMs;
const timeLeft = () => end - common.nowMs();
const wsUrl = url.href.replace(/^http/, "ws").replace(/\/$/, "") + "/socket.io/?EIO=4&transport=websocket";
const NS = common.NAMESPACE;

const stats = {
  kind, addresses: addresses.length, handshakes: 0, opened: 0, refused_http: {}, errors: {}, closed_by_server: 0,
  connected: 0, connect_errors: 0, packets: 0, bytes: 0, max_open: 0, sessions: [],
};
let open = 0;
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

// An engine.io session over a WebSocket: resolves with {ws} once the OPEN packet arrived, or {error}.
function openSession(onMessage) {
  return new Promise((resolve) => {
    stats.handshakes++;
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false, localAddress: address() });
    let done = false;
    const finish = (r) => { if (!done) { done = true; resolve(r); } };
    ws.on("unexpected-response", (req, res) => {
      bump(stats.refused_http, String(res.statusCode));
      res.resume();
      ws.terminate();
      finish({ error: `http_${res.statusCode}` });
    });
    ws.on("error", (err) => { bump(stats.errors, String(err && (err.code || err.message))); finish({ error: "error" }); });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      if (data[0] === 0x32 /* ping */) return ws.send("3");
      if (data[0] === 0x30 /* open */ && !done) {
        stats.opened++;
        open++;
        stats.max_open = Math.max(stats.max_open, open);
        ws.once("close", () => { open--; if (timeLeft() > 0 && !ws._byClient) stats.closed_by_server++; });
        return finish({ ws });
      }
      if (onMessage) onMessage(data, ws);
    });
    ws.on("close", () => {
      // gevent-websocket answers a refused handshake with the 101 upgrade, then closes: no HTTP status.
      if (!done) bump(stats.errors, "closed_before_open");
      finish({ error: "closed" });
    });
  });
}

// A session connected to the namespace with a valid token: resolves with {ws} or {error}.
async function connectValid(user) {
  let resolveConnect;
  const connected = new Promise((r) => { resolveConnect = r; });
  const s = await openSession((data) => {
    const text = data.toString();
    if (text.startsWith(`40${NS},`)) resolveConnect(true);
    else if (text.startsWith(`44${NS},`)) resolveConnect(false);
  });
  if (!s.ws) return s;
  s.ws.once("close", () => resolveConnect(false));
  s.ws.send(`40${NS},${JSON.stringify({ token: tokens[user] })}`);
  const timer = setTimeout(() => resolveConnect(false), Math.max(100, Math.min(20000, timeLeft())));
  const ok = await connected;
  clearTimeout(timer);
  if (ok) stats.connected++;
  else { stats.connect_errors++; s.ws.terminate(); return { error: "connect" }; }
  return s;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

function closeByClient(ws) { ws._byClient = true; ws.terminate(); }

// Write `packet()` to ws as fast as it drains (at most 1 MiB buffered), until it closes or time is up.
async function blast(ws, packet, binary) {
  const first = common.nowMs();
  let sent = 0;
  let closeSeen = null;
  ws.once("close", () => { closeSeen = Math.round(common.nowMs() - first); });
  while (timeLeft() > 0 && ws.readyState === WebSocket.OPEN) {
    if (ws.bufferedAmount > 1 << 20) { await sleep(1); continue; }
    for (let i = 0; i < 200 && ws.readyState === WebSocket.OPEN; i++) {
      const p = packet();
      ws.send(p, { binary: !!binary });
      sent++;
      stats.packets++;
      stats.bytes += p.length;
    }
    await tick();
  }
  // How long the session took packets, and how many: a server that closes it after a few keeps reading what
  // was already sent until the client sees the close.
  if (stats.sessions.length < 50) {
    stats.sessions.push({ packets: sent, ms: Math.round(common.nowMs() - first), close_seen_ms: closeSeen,
      state: ws.readyState, end: ws.readyState === WebSocket.OPEN ? "time_up" : "closed" });
  }
  if (ws.readyState === WebSocket.OPEN) closeByClient(ws);
}

async function loopSessions(body) {
  while (timeLeft() > 0) {
    const before = stats.handshakes;
    await body();
    if (stats.handshakes === before) await tick();
  }
}

const kinds = {
  async events() {
    const EVENT = `42${NS},["x",{}]`;
    await Promise.all(Array.from({ length: workers }, (_, w) => loopSessions(async () => {
      const s = await connectValid(firstUser + w);
      if (s.ws) await blast(s.ws, () => EVENT);
      else await tick();
    })));
  },
  async refused() {
    const BAD = `40${NS},${JSON.stringify({ token: "not.a.token" })}`;
    await Promise.all(Array.from({ length: workers }, () => loopSessions(async () => {
      const s = await openSession();
      if (s.ws) await blast(s.ws, () => BAD);
      else await tick();
    })));
  },
  async pending() {
    const held = new Set();
    await Promise.all(Array.from({ length: concurrency }, () => loopSessions(async () => {
      if (held.size >= sessionsTarget) return sleep(20);
      const s = await openSession();
      if (!s.ws) return tick();
      held.add(s.ws);
      s.ws.once("close", () => held.delete(s.ws));
    })));
    for (const ws of held) closeByClient(ws);
  },
  async binary() {
    const HEADER = `45999999-${NS},["x",{"_placeholder":true,"num":0}]`;
    const CHUNK = Buffer.alloc(15000, 0x61);
    await Promise.all(Array.from({ length: workers }, (_, w) => loopSessions(async () => {
      const s = await connectValid(firstUser + w);
      if (!s.ws) return tick();
      s.ws.send(HEADER);
      stats.packets++;
      await blast(s.ws, () => CHUNK, true);
    })));
  },
  async closeconnect() {
    const agentFor = new Map();
    let started = 0;
    stats.posted = 0;
    stats.post_status = {};
    const request = (method, path, body, localAddress) => new Promise((resolve) => {
      const req = http.request({ host: url.hostname, port: url.port, path, method, localAddress, agent: false,
        headers: body ? { "content-type": "text/plain;charset=UTF-8", "content-length": Buffer.byteLength(body) } : {} },
      (res) => {
        const parts = [];
        res.on("data", (c) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }));
      });
      req.setTimeout(Math.max(1000, timeLeft() + 5000), () => req.destroy(new Error("timeout")));
      req.on("error", (e) => resolve({ status: 0, error: String(e.code || e.message) }));
      req.end(body);
    });
    await Promise.all(Array.from({ length: concurrency }, () => loopSessions(async () => {
      if (started >= sessionsTarget) return sleep(20);
      const user = firstUser + (started++ % Math.max(1, tokens.length - firstUser));
      const from = address();
      stats.handshakes++;
      const hs = await request("GET", "/socket.io/?EIO=4&transport=polling", null, from);
      if (hs.status !== 200) { bump(stats.refused_http, String(hs.status || hs.error)); return tick(); }
      const sid = (hs.body.match(/"sid":"([^"]+)"/) || [])[1];
      if (!sid) { bump(stats.errors, "no_sid"); return tick(); }
      stats.opened++;
      const post = await request("POST", `/socket.io/?EIO=4&transport=polling&sid=${sid}`,
        `1\x1e40${NS},${JSON.stringify({ token: tokens[user] })}`, from);
      stats.posted++;
      bump(stats.post_status, String(post.status || post.error));
    })));
    agentFor.clear();
  },
  async slow() {
    const s = await connectValid(firstUser);
    if (!s.ws) { stats.slow = { connected: false }; return; }
    let closedAt = null;
    s.ws.once("close", () => { closedAt = common.nowMs() - t0; });
    s.ws._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue does
    while (timeLeft() > 0 && closedAt === null) await sleep(50);
    const pausedFor = common.nowMs() - t0;
    let got = 0;
    s.ws.on("message", () => { got++; });
    s.ws._socket.resume();
    for (let i = 0; i < 100 && closedAt === null && s.ws.readyState === WebSocket.OPEN; i++) await sleep(50);
    stats.slow = { connected: true, paused_ms: Math.round(pausedFor), closed_after_ms: closedAt && Math.round(closedAt),
      messages_after_resume: got, state_after: s.ws.readyState };
    if (s.ws.readyState === WebSocket.OPEN) closeByClient(s.ws);
  },
  async connect() {
    const held = [];
    const connectMs = [];
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < sessionsTarget && timeLeft() > 0) {
        const user = firstUser + next++;
        const start = common.nowMs();
        const s = await connectValid(user);
        if (s.ws) { held.push(s.ws); connectMs.push(common.nowMs() - start); }
      }
    }));
    stats.connect_wall_s = (common.nowMs() - t0) / 1000;
    while (timeLeft() > 0) await sleep(50);
    connectMs.sort((a, b) => a - b);
    const q = (p) => (connectMs.length ? Math.round(connectMs[Math.min(connectMs.length - 1, Math.floor(p * connectMs.length))]) : null);
    stats.connect_ms = { p50: q(0.5), p99: q(0.99), max: q(1) };
    for (const ws of held) closeByClient(ws);
  },
};

(async () => {
  if (!kinds[kind]) throw new Error(`unknown --kind ${kind}`);
  await kinds[kind]();
  const wall = (common.nowMs() - t0) / 1000;
  const cpu = process.cpuUsage();
  stats.wall_s = Math.round(wall * 1000) / 1000;
  stats.packets_per_s = Math.round(stats.packets / wall);
  stats.mb_sent = Math.round(stats.bytes / 1e4) / 100;
  stats.handshakes_per_s = Math.round(stats.handshakes / wall);
  stats.cpu_pct = Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 1000) / 10;
  await sleep(200);
  process.stdout.write(JSON.stringify(stats) + "\n");
  process.exit(0);
})().catch((e) => {
  process.stdout.write(JSON.stringify({ kind, error: String(e && e.stack) }) + "\n");
  process.exit(1);
});
