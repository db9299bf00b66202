// Preload for server-everything's HTTP modes (`node --import ./loopback.mjs
// .../server-everything/dist/index.js streamableHttp|sse`).
//
// server-everything calls app.listen(PORT) without a host, which binds every
// interface. This forces the bind address to loopback (MCPEDGE_BIND_HOST,
// default 127.0.0.1) and announces the real address on stderr as
//   MCPEDGE_LISTENING <host> <port>
// so callers can pass PORT=0 and learn the port the kernel picked.
import net from "node:net";

const host = process.env.MCPEDGE_BIND_HOST || "127.0.0.1";
const origListen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    if (first.path === undefined && first.host === undefined && first.fd === undefined && first.handle === undefined && !(first instanceof net.Server)) {
      args[0] = { ...first, host };
    }
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] !== "string") args.splice(1, 0, host);
  } else if (first === undefined || typeof first === "function") {
    args.unshift(0, host);
  }
  this.once("listening", () => {
    const a = this.address();
    if (a && typeof a === "object") process.stderr.write(`MCPEDGE_LISTENING ${a.address} ${a.port}\n`);
  });
  return origListen.apply(this, args);
};
