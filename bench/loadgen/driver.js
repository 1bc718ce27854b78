// The emit driver: POSTs /bench/emit to a server at a fixed event rate, to random connected users, for a
// fixed time, then prints one JSON line with what it sent and its own CPU time.
//
//   node bench/loadgen/driver.js --url http://127.0.0.1:PORT --rate 1000 --duration 5 --users 5000
//                                [--tick-ms 10] [--max-batch 500] [--concurrency 8] [--seed 1]
//
// Open loop: event i is due at start + i/rate. Every tick (10 ms) sends the events that are due, at most
// --max-batch per request and --concurrency requests in flight; what cannot go yet waits for a free request.
// --max-batch 1 means one event per request (per view). Each event carries in payload.title the time its
// request was sent (the latency the clients measure starts there, not at the tick); how late requests left
// against the events' due times is reported as "lag" (a server that cannot take the requests shows there).
"use strict";

const http = require("node:http");
const common = require("./common.js");

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const url = new URL(arg("url"));
const rate = Number(arg("rate"));
const duration = Number(arg("duration")) * 1000;
const users = Number(arg("users"));
const tickMs = Number(arg("tick-ms", 10));
const maxBatch = Number(arg("max-batch", 500));
const concurrency = Number(arg("concurrency", 8));
let seed = Number(arg("seed", 1)) >>> 0;
const drainMs = Number(arg("drain-ms", 15000));

function random() { // mulberry32: the same users for the same seed on every server
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const pending = [];
let scheduled = 0;
let acked = 0;
let failedEvents = 0;
let requests = 0;
let failedRequests = 0;
let inflight = 0;
let maxPending = 0;
const requestMs = [];
const lagMs = [];
const start = common.nowMs();
const end = start + duration;

function post(batch) {
  inflight++;
  requests++;
  const t0 = common.nowMs();
  const title = common.TITLE_PREFIX + t0.toFixed(3);
  const body = JSON.stringify({ events: batch.map(([user, due]) => { lagMs.push(t0 - due); return [user, title]; }) });
  const req = http.request(
    { host: url.hostname, port: url.port, path: "/bench/emit", method: "POST", agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
    (res) => {
      res.resume();
      res.on("end", () => {
        inflight--;
        requestMs.push(common.nowMs() - t0);
        if (res.statusCode === 200) acked += batch.length;
        else { failedRequests++; failedEvents += batch.length; }
        pump();
      });
    },
  );
  req.on("error", () => { inflight--; failedRequests++; failedEvents += batch.length; pump(); });
  req.end(body);
}

function pump() {
  while (inflight < concurrency && pending.length) post(pending.splice(0, maxBatch));
}

function tick() {
  const now = common.nowMs();
  const dueUntil = Math.min(now, end);
  const due = Math.floor(((dueUntil - start) / 1000) * rate);
  for (; scheduled < due; scheduled++) {
    const at = start + (scheduled * 1000) / rate;
    pending.push([common.USER_PREFIX + Math.floor(random() * users), at]);
  }
  maxPending = Math.max(maxPending, pending.length);
  pump();
  if (now < end) setTimeout(tick, tickMs);
  else finish(now);
}

function finish(stoppedAt) {
  const deadline = stoppedAt + drainMs;
  (function wait() {
    if ((inflight > 0 || pending.length > 0) && common.nowMs() < deadline) {
      pump();
      return setTimeout(wait, 5);
    }
    const cpu = process.cpuUsage();
    requestMs.sort((a, b) => a - b);
    lagMs.sort((a, b) => a - b);
    const quantile = (xs, p) => (xs.length ? Math.round(xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] * 1000) / 1000 : null);
    const q = (p) => quantile(requestMs, p);
    process.stdout.write(JSON.stringify({
      scheduled, acked, failed_events: failedEvents, unsent: pending.length,
      requests, failed_requests: failedRequests, inflight_at_end: inflight, max_pending: maxPending,
      wall_s: (common.nowMs() - start) / 1000, send_window_s: duration / 1000,
      request_ms_p50: q(0.5), request_ms_p99: q(0.99), lag_ms_p50: quantile(lagMs, 0.5),
      lag_ms_p99: quantile(lagMs, 0.99), lag_ms_max: lagMs.length ? lagMs[lagMs.length - 1] : null, cpu_us: cpu.user + cpu.system,
    }) + "\n");
    process.exit(0);
  })();
}

tick();
