// Opens one or more tabs of the official socket.io-client against an API Gateway WebSocket API (or its offline
// emulator), as the example page does: transports ["websocket"], the stage as the path, the client's defaults
// otherwise (reconnection on). Prints one JSON object per line, each with the tab's index and Date.now():
// {"kind": "connect"}, {"kind": "connect_error", "message", "data"}, {"kind": "disconnect", "reason"},
// {"kind": "event", "name", "envelope"}, {"kind": "ping"}, and {"kind": "opening"} just before each tab's
// io() call (the start of its connect time). Runs until its standard input closes.
//
//   node apigateway_client.mjs <ws url with the stage, e.g. ws://127.0.0.1:3001/local> <token or -> [<tabs>]
import { io } from "socket.io-client";

const [url, token, tabs = "1"] = process.argv.slice(2);
if (!url || token === undefined) {
  console.error("usage: node apigateway_client.mjs <ws url> <token or -> [<tabs>]");
  process.exit(64);
}
const api = new URL(url);
const print = (tab, observation) => console.log(JSON.stringify({ tab, t: Date.now(), ...observation }));

const sockets = [];
for (let tab = 0; tab < Number(tabs); tab += 1) {
  print(tab, { kind: "opening" });
  const socket = io(`${api.origin}/dashboard`, {
    path: api.pathname,
    addTrailingSlash: false,
    transports: ["websocket"],
    forceNew: true,
    auth: token === "-" ? {} : { token },
  });
  socket.on("connect", () => print(tab, { kind: "connect" }));
  socket.on("connect_error", (err) => print(tab, { kind: "connect_error", message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason) => print(tab, { kind: "disconnect", reason }));
  socket.onAny((name, envelope) => print(tab, { kind: "event", name, envelope }));
  socket.io.on("open", () => socket.io.engine.on("ping", () => print(tab, { kind: "ping" })));
  sockets.push(socket);
}
print(-1, { kind: "started" });

process.stdin.on("end", () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
});
process.stdin.resume();
