// The Socket.IO peer pushbench measures (`pushbench run --peer socketio`): socket.io 4 on one Node
// process, started by the load generator (loadgen/src/targets/peer/socketio.rs) with
//
//   node server.js HOST PORT PING_INTERVAL_MS MAX_DISCONNECTION_MS
//
// - Subscribers connect to the default namespace with `auth: { topics: ["a", "b"] }` and are put in one
//   room per topic. Socket.IO's connection-state recovery is on, as its documentation describes
//   (socket.io/docs/v4/connection-state-recovery): a client that comes back within
//   MAX_DISCONNECTION_MS with its session's `pid` and the `offset` of the last event it received gets its
//   rooms back and every event it missed; `socket.recovered` then says so, and the rooms are not joined
//   again.
// - The server pings every PING_INTERVAL_MS (our server's heartbeat interval: what idle subscribers cost
//   compares like for like). On long-polling a ping also ends a held GET: Socket.IO has no other hold
//   timeout.
// - Publish: `POST /publish?topic=T` with the event data as the body, emitted as `event` to room T; the
//   answer `200 ok` comes once it is handed to the sockets.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const [host, port, pingInterval, maxDisconnectionDuration] = process.argv.slice(2);
if (!host || !(Number(port) > 0) || !(Number(pingInterval) > 0) || !(Number(maxDisconnectionDuration) > 0)) {
  console.error("usage: node server.js HOST PORT PING_INTERVAL_MS MAX_DISCONNECTION_MS");
  process.exit(2);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://peer");
  const topic = url.searchParams.get("topic");
  if (req.method !== "POST" || url.pathname !== "/publish" || !topic) {
    res.writeHead(404, { "content-type": "text/plain" }).end("POST /publish?topic=T\n");
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    io.to(topic).emit("event", Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
  });
});
// The publisher keeps one connection for the whole run, however slowly it publishes.
server.keepAliveTimeout = 0;

const io = new Server(server, {
  serveClient: false,
  pingInterval: Number(pingInterval),
  connectionStateRecovery: {
    maxDisconnectionDuration: Number(maxDisconnectionDuration),
    // A recovered session skips the middlewares (none here), as in the documentation's example.
    skipMiddlewares: true,
  },
});

io.on("connection", (socket) => {
  if (socket.recovered) {
    return; // its rooms came back with its session
  }
  const topics = socket.handshake.auth.topics;
  if (!Array.isArray(topics) || topics.length === 0 || !topics.every((t) => typeof t === "string")) {
    socket.disconnect(true);
    return;
  }
  socket.join(topics);
});

server.listen(Number(port), host, () => {
  console.log(`socket.io listening on ${host}:${port}`);
});
