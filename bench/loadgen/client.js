// One load-client process: holds many Socket.IO connections over WebSockets, one TCP connection each (as
// browser tabs have), and records connect latencies and event latencies. Two kinds of connection:
// - "official": socket.io-client 4.8 (io(url + "/dashboard", {transports: ["websocket"], forceNew: true}));
// - "lean" (the default of bench/run.py): the same protocol spoken directly over the `ws` package that
//   socket.io-client itself uses, offering permessage-deflate as it does by default (and as browsers do):
//   Engine.IO v4 open, Socket.IO v5 namespace CONNECT with the auth payload
//   {token}, pong for every ping, EVENT packets; the event's send time is read from the payload's title
//   without decoding the rest of the JSON. It costs a fraction of the official client's CPU per event, so
//   that on this 2-core machine the load generator is not what limits the server.
//
// Driven by bench/run.py over stdin/stdout, one JSON object per line:
//   {"id", "cmd": "connect", "url", "tokens_file", "users": [first, end), "tabs", "concurrency", "timeout_ms"}
//   {"id", "cmd": "reset"}                 -> start a new recording window
//   {"id", "cmd": "report"}                -> latencies (ms) and counts since the last reset
//   {"id", "cmd": "count"}                 -> events received since the last reset (cheap, for draining)
//   {"id", "cmd": "disconnect"}            -> close every socket
//   {"id", "cmd": "exit"}
// Every answer carries the same "id" and this process's CPU time (process.cpuUsage, µs).
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { io } = require("socket.io-client");
const WebSocket = require("ws");
const common = require("./common.js");

const sockets = [];
let latencies = new Float64Array(1 << 16);
let nLat = 0;
let received = 0;
let badEvents = 0;
let unexpectedDisconnects = 0;
let tokens = null;
let tokensPath = null;

function recordLatency(ms) {
  if (nLat === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[nLat++] = ms;
}

function onEvent(envelope) {
  const now = common.nowMs();
  received++;
  const title = envelope && envelope.payload && envelope.payload.title;
  if (typeof title !== "string" || !title.startsWith(common.TITLE_PREFIX)) {
    badEvents++;
    return;
  }
  recordLatency(now - Number(title.slice(common.TITLE_PREFIX.length)));
}

const TITLE_MARK = Buffer.from(`"title":"${common.TITLE_PREFIX}`);
const CONNECT_OK = `40${common.NAMESPACE},`;
const CONNECT_ERR = `44${common.NAMESPACE},`;
// engine.io-client's default WebSocket options, so that the lean client's handshake offers what a browser's does.
const PER_MESSAGE_DEFLATE = { threshold: 1024 };

function onLeanEvent(buf) {
  const now = common.nowMs();
  received++;
  const at = buf.indexOf(TITLE_MARK);
  if (at < 0) {
    badEvents++;
    return;
  }
  const start = at + TITLE_MARK.length;
  const end = buf.indexOf(34, start); // the closing quote
  const sent = Number(buf.toString("latin1", start, end));
  if (!Number.isFinite(sent)) {
    badEvents++;
    return;
  }
  recordLatency(now - sent);
}

// A Socket.IO client reduced to what the benchmark needs; close() as socket.io-client's.
function connectLean(url, token, timeoutMs, localAddress) {
  return new Promise((resolve) => {
    const start = common.nowMs();
    const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    // Offer permessage-deflate as browsers and engine.io-client do (its default, in
    // node_modules/engine.io-client/build/cjs/socket.js, is perMessageDeflate: {threshold: 1024}, passed to
    // `ws`); whether it is used is the server's choice (the extension declines it unless
    // DASHBOARD_WS_COMPRESSION is on). Every frame this client sends is under the threshold: sent uncompressed.
    const ws = new WebSocket(wsUrl, { localAddress, perMessageDeflate: PER_MESSAGE_DEFLATE });
    let done = false;
    let connected = false;
    const socket = { close: () => { connected = false; ws.terminate(); } };
    const timer = setTimeout(() => finish(false, "timeout"), timeoutMs);
    function finish(ok, reason) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ok) ws.terminate();
      resolve({ ok, ms: common.nowMs() - start, end: common.nowMs(), reason, socket });
    }
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const type = data[0];
      if (type === 0x34 /* "4": message */ && data[1] === 0x32 /* "2": EVENT */) return onLeanEvent(data);
      if (type === 0x32 /* "2": ping */) return ws.send("3");
      if (type === 0x30 /* "0": open */) return ws.send(`40${common.NAMESPACE},${JSON.stringify({ token })}`);
      const text = data.toString();
      if (text.startsWith(CONNECT_OK)) {
        connected = true;
        return finish(true);
      }
      if (text.startsWith(CONNECT_ERR)) return finish(false, "connect_error");
    });
    // The server refuses a handshake beyond its rates with HTTP 429 (see connect(): retried as the official
    // client reconnects).
    ws.on("unexpected-response", (req, res) => finish(false, `http_${res.statusCode}`));
    ws.on("error", (err) => finish(false, String(err && err.code || err)));
    ws.on("close", () => {
      if (!done) return finish(false, "closed");
      if (connected) {
        connected = false;
        unexpectedDisconnects++;
      }
    });
  });
}

function connectOne(url, token, timeoutMs, localAddress) {
  return new Promise((resolve) => {
    const start = common.nowMs();
    // perMessageDeflate is left to engine.io-client's default ({threshold: 1024}): offered, as a browser does.
    const socket = io(url + common.NAMESPACE, {
      transports: ["websocket"],
      localAddress,
      auth: { token },
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
    });
    let done = false;
    const finish = (ok, reason) => {
      if (done) return;
      done = true;
      resolve({ ok, ms: common.nowMs() - start, end: common.nowMs(), reason, socket });
    };
    socket.on("connect", () => finish(true));
    socket.on("connect_error", (err) => {
      finish(false, String(err && err.message));
      socket.close();
    });
    socket.on(common.EVENT, onEvent);
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") unexpectedDisconnects++;
    });
  });
}

// socket.io-client's Manager reconnects after reconnectionDelay (1 s) doubled per attempt, up to
// reconnectionDelayMax (5 s), each randomised by randomizationFactor (0.5): its defaults, in
// node_modules/socket.io-client/build/cjs/manager.js and contrib/backo2.
const MAX_RETRIES = 20;
function reconnectDelay(attempt) {
  const base = Math.min(1000 * 2 ** attempt, 5000);
  return Math.min(base * (1 + (Math.random() * 2 - 1) * 0.5), 5000);
}

// Each user's tabs connect from a loopback address of that user's own (127.0.0.0/8 is all loopback on Linux),
// as browsers on different machines would: the server's per-address handshake rate then sees one client per
// user. 127.1.x.y; users number far fewer than 65,536 here.
function userAddress(user) {
  return `127.1.${(user >> 8) & 255}.${user & 255}`;
}

async function connect(msg) {
  if (tokensPath !== msg.tokens_file) {
    tokens = JSON.parse(fs.readFileSync(msg.tokens_file, "utf8"));
    tokensPath = msg.tokens_file;
  }
  const jobs = [];
  for (let u = msg.users[0]; u < msg.users[1]; u++) for (let t = 0; t < msg.tabs; t++) jobs.push(u);
  const connectMs = [];
  const failures = {};
  const attempt = (user) => (msg.lean ? connectLean : connectOne)(msg.url, tokens[user], msg.timeout_ms || 20000,
                                                                  userAddress(user));
  let retries = 0;
  let ok = 0;
  // --ramp-rate: this process's share of the handshakes per second, started at even intervals (as a population
  // of browsers arrives), so that every server's sockets get the same spread of ping phases.
  const interval = msg.rate ? 1000 / msg.rate : 0;
  let nextSlot = common.nowMs();
  let next = 0;
  const t0 = common.nowMs();
  let tEnd = t0;
  async function worker() {
    while (next < jobs.length) {
      const user = jobs[next++];
      if (interval) {
        const slot = Math.max(common.nowMs(), nextSlot);
        nextSlot = slot + interval;
        await new Promise((done) => setTimeout(done, slot - common.nowMs()));
      }
      const start = common.nowMs();
      let r = await attempt(user);
      for (let n = 0; msg.lean && r.reason === "http_429" && n < MAX_RETRIES; n++) {
        retries++;
        await new Promise((done) => setTimeout(done, reconnectDelay(n)));
        r = await attempt(user);
      }
      // Connect time is the user's: from the first attempt, through any retries, to the CONNECT's answer.
      connectMs.push(Math.round((r.end - start) * 100) / 100);
      tEnd = Math.max(tEnd, r.end);
      if (r.ok) {
        ok++;
        sockets.push(r.socket);
      } else {
        failures[r.reason] = (failures[r.reason] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(msg.concurrency || 50, jobs.length) }, worker));
  return { connected: ok, failed: jobs.length - ok, failures, retries, connect_ms: connectMs, t0, t1: tEnd, total: sockets.length };
}

function report() {
  const out = new Array(nLat);
  for (let i = 0; i < nLat; i++) out[i] = Math.round(latencies[i] * 1000) / 1000;
  return { received, bad_events: badEvents, unexpected_disconnects: unexpectedDisconnects, latencies_ms: out, sockets: sockets.length };
}

function reset() {
  nLat = 0;
  received = 0;
  badEvents = 0;
}

async function disconnectAll() {
  const n = sockets.length;
  while (sockets.length) sockets.pop().close();
  await new Promise((r) => setTimeout(r, 100));
  return { closed: n };
}

function reply(id, body) {
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ id, ...body, cpu_us: cpu.user + cpu.system, rss: process.memoryUsage().rss }) + "\n");
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const msg = JSON.parse(line);
  try {
    switch (msg.cmd) {
      case "connect": return reply(msg.id, await connect(msg));
      case "reset": reset(); return reply(msg.id, {});
      case "count": return reply(msg.id, { received, sockets: sockets.length, unexpected_disconnects: unexpectedDisconnects });
      case "report": return reply(msg.id, report());
      case "disconnect": return reply(msg.id, await disconnectAll());
      case "exit": reply(msg.id, {}); process.exit(0);
      default: return reply(msg.id, { error: `unknown command ${msg.cmd}` });
    }
  } catch (e) {
    reply(msg.id, { error: String(e && e.stack) });
  }
});
rl.on("close", () => process.exit(0));
