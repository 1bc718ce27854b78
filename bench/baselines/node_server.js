// Baseline (c): the reference Socket.IO server on Node.js (socket.io 4.8), with the naive app's logic.
//
//   node bench/baselines/node_server.js [--port 0]
//
// jsonwebtoken's jwt.verify (HS256 only; signature, exp and nbf checked; refresh tokens refused) in a
// namespace middleware, with the secret as a KeyObject made once (given a string, jsonwebtoken 9 first
// tries to parse it as a PEM public key on every call: 40 % of this server's handshake CPU when measured), one room per user, the envelope checked by a small hand-written validator (the
// same rules as the marshmallow schemas: UUIDs, title length, status, URL or null, ISO dates) and
// io.of("/dashboard").to(room).emit(...). Default socket.io options; listen backlog as for the others.
"use strict";

const http = require("node:http");
const { createSecretKey, randomUUID } = require("node:crypto");
const { Server } = require("socket.io");
const jwt = require("jsonwebtoken");
const common = require("../loadgen/common.js");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATUSES = new Set(["ADDED", "IN_PROGRESS", "BUILT"]);
const SECRET = createSecretKey(Buffer.from(common.JWT_SECRET));

function check(condition, field) {
  if (!condition) throw new Error(`invalid ${field}`);
}

function validateMoc(moc) {
  check(typeof moc.id === "string" && UUID.test(moc.id), "id");
  check(typeof moc.title === "string" && moc.title.length >= 1 && moc.title.length <= 200, "title");
  check(typeof moc.theme === "string", "theme");
  check(STATUSES.has(moc.buildStatus), "buildStatus");
  check(moc.coverImageUrl === null || (typeof moc.coverImageUrl === "string" && URL.canParse(moc.coverImageUrl)), "coverImageUrl");
  check(typeof moc.createdAt === "string" && !Number.isNaN(Date.parse(moc.createdAt)), "createdAt");
  return moc;
}

function buildEnvelope(type, payload) {
  const envelope = { eventId: randomUUID(), type, timestamp: new Date().toISOString(), payload: validateMoc(payload) };
  check(UUID.test(envelope.eventId), "eventId");
  return envelope;
}

const port = Number((process.argv.indexOf("--port") > 0 && process.argv[process.argv.indexOf("--port") + 1]) || 0);
const server = http.createServer();
const io = new Server(server, { serveClient: false });
const nsp = io.of(common.NAMESPACE);

nsp.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  const refuse = () => {
    const err = new Error("unauthorized");
    err.data = { code: "AUTH_FAILED" };
    next(err);
  };
  if (!token) return refuse();
  let claims;
  try {
    claims = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
  } catch (e) {
    return refuse();
  }
  if (claims.type !== "access") return refuse();
  socket.data.userId = String(claims.sub);
  next();
});

nsp.on("connection", (socket) => {
  socket.join(`user:${socket.data.userId}`);
});

function emitToUser(userId, type, payload) {
  nsp.to(`user:${userId}`).emit(type, buildEnvelope(type, payload));
}

server.on("request", (req, res) => {
  if (req.url.startsWith("/socket.io/")) return; // socket.io's own listener answers these
  if (req.method === "POST" && req.url === "/bench/emit") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const events = JSON.parse(Buffer.concat(chunks).toString()).events;
      for (const [userId, title] of events) {
        emitToUser(userId, common.EVENT, {
          id: randomUUID(), title, theme: "Bench", buildStatus: "ADDED", coverImageUrl: null,
          createdAt: new Date().toISOString(),
        });
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ n: events.length }));
    });
    return;
  }
  if (req.method === "GET" && req.url.startsWith("/bench/stats")) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ connections: nsp.sockets.size, gc: null }));
    return;
  }
  res.writeHead(404);
  res.end();
});

server.listen({ host: "127.0.0.1", port, backlog: common.LISTEN_BACKLOG }, () => {
  console.log(`PORT ${server.address().port}`);
});

// A clean exit on SIGTERM (the harness's stop), so that --cpu-prof can write its profile.
process.on("SIGTERM", () => process.exit(0));
