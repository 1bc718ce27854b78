// Opens tabs of the official socket.io-client as the example page does: transports ["websocket"], the
// client's defaults otherwise (reconnection with its backoff, permessage-deflate offered). Against an API
// Gateway WebSocket API (or its offline emulator), the URL's path is the stage, used as the Socket.IO path;
// against a Flask server (or nginx in front of several), the URL has no path and the default /socket.io/ is used.
// Prints one JSON object per line, each with the tab's index and Date.now():
// {"kind": "connect", "recovered"}, {"kind": "connect_error", "message", "data"}, {"kind": "disconnect", "reason"},
// {"kind": "event", "name", "envelope", "offset"} (an offset with connection state recovery), {"kind": "ping"},
// and {"kind": "opening"} just before each tab's io() call (the start of its connect time). Runs until its
// standard input closes.
//
//   node tabs.mjs <url> <token, or -, or @file of tokens one per line> [<tabs>] [<ms between tabs>]
//
// With a file of tokens, tab i uses token i modulo their number: several tabs of several users.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const [url, tokenArg, tabs = "1", spacing = "0"] = process.argv.slice(2);
if (!url || tokenArg === undefined) {
  console.error("usage: node tabs.mjs <url> <token, or -, or @file> [<tabs>] [<ms between tabs>]");
  process.exit(64);
}
const tokens = tokenArg.startsWith("@") ? readFileSync(tokenArg.slice(1), "utf8").split("\n").filter(Boolean) : [tokenArg];
const server = new URL(url);
const path = server.pathname === "/" ? {} : { path: server.pathname, addTrailingSlash: false };
const print = (tab, observation) => console.log(JSON.stringify({ tab, t: Date.now(), ...observation }));

const sockets = [];
function open(tab) {
  const token = tokens[tab % tokens.length];
  print(tab, { kind: "opening" });
  const socket = io(`${server.origin}/dashboard`, {
    ...path,
    transports: ["websocket"],
    forceNew: true,
    auth: token === "-" ? {} : { token },
  });
  socket.on("connect", () => print(tab, { kind: "connect", recovered: socket.recovered }));
  socket.on("connect_error", (err) => print(tab, { kind: "connect_error", message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason) => print(tab, { kind: "disconnect", reason }));
  socket.onAny((name, envelope, offset) => print(tab, { kind: "event", name, envelope, offset }));
  socket.io.on("open", () => socket.io.engine.on("ping", () => print(tab, { kind: "ping" })));
  sockets.push(socket);
}

for (let tab = 0; tab < Number(tabs); tab += 1) {
  open(tab);
  if (Number(spacing) > 0) await new Promise((resolve) => setTimeout(resolve, Number(spacing)));
}
print(-1, { kind: "started" });

process.stdin.on("end", () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
});
process.stdin.resume();
