// Connects to a flask-dashboard-ws server with the official socket.io-client and prints, one JSON object
// per line, what it observes: {"kind": "connect"}, {"kind": "connect_error", "message", "data"},
// {"kind": "event", "name", "envelope"}, {"kind": "disconnect", "reason"}.
// It exits once it has received <events> events (default 1), or after a connect_error. With "reconnect", it
// keeps the client's default reconnection on (as a browser page does) and prints every connect.
//
//   node dashboard_client.mjs <server url> <token> [<events>] [reconnect]
import { io } from "socket.io-client";

const [url, token, wanted = "1", mode = ""] = process.argv.slice(2);
if (!url || token === undefined) {
  console.error("usage: node dashboard_client.mjs <server url> <token> [<events>]");
  process.exit(64);
}
let remaining = Number(wanted);
const print = (observation) => console.log(JSON.stringify(observation));

const socket = io(`${url}/dashboard`, { auth: { token }, transports: ["websocket"], reconnection: mode === "reconnect" });
socket.on("connect", () => print({ kind: "connect" }));
socket.on("connect_error", (err) => {
  print({ kind: "connect_error", message: err.message, data: err.data ?? null });
  socket.close();
});
socket.on("disconnect", (reason) => print({ kind: "disconnect", reason }));
socket.onAny((name, envelope) => {
  print({ kind: "event", name, envelope });
  remaining -= 1;
  if (remaining <= 0) socket.close();
});
