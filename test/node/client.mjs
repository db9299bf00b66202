#!/usr/bin/env node
// A real MCP client (built on @modelcontextprotocol/sdk) for mcpedge's
// end-to-end tests. It connects to one URL, runs one scenario, prints exactly
// ONE line of JSON on stdout and exits 0 only when the scenario succeeded.
//
//   node test/node/client.mjs --url URL --scenario NAME [--arg JSON]
//        [--header 'K: V']... [--transport streamable|sse] [--timeout SECONDS]
//        [--protocol-version V] [--capabilities JSON] [--no-terminate]
//
// See test/node/README.md for the scenarios and what each one reports.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "@modelcontextprotocol/sdk/types.js";

// Everything except the final result line goes to stderr, so stdout stays
// machine-readable even if a library logs.
const writeOut = process.stdout.write.bind(process.stdout);
console.log = (...a) => console.error(...a);
console.info = (...a) => console.error(...a);

const ROOTS = [{ uri: "file:///tmp/mcpedge-roots", name: "test-root" }];
const SAMPLED_TEXT = "sampled-by-node";
const DEFAULT_CAPABILITIES = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
};

// ---------------------------------------------------------------- arguments

class UsageError extends Error {}
function usage(msg) {
  throw new UsageError(`usage: ${msg}`);
}

function parseArgs(argv) {
  const o = {
    headers: {},
    transport: "streamable",
    timeout: 30,
    terminate: true,
    arg: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--url": o.url = next(); break;
      case "--scenario": o.scenario = next(); break;
      case "--arg": {
        const raw = next();
        try { o.arg = JSON.parse(raw); } catch (e) { usage(`--arg is not JSON: ${e.message}`); }
        break;
      }
      case "--header": {
        const h = next();
        const idx = h.indexOf(":");
        if (idx <= 0) usage(`--header wants 'Name: value', got ${JSON.stringify(h)}`);
        o.headers[h.slice(0, idx).trim()] = h.slice(idx + 1).trim();
        break;
      }
      case "--transport": o.transport = next(); break;
      case "--timeout": o.timeout = Number(next()); break;
      case "--protocol-version": o.protocolVersion = next(); break;
      case "--capabilities": {
        const raw = next();
        try { o.capabilities = JSON.parse(raw); } catch (e) { usage(`--capabilities is not JSON: ${e.message}`); }
        break;
      }
      case "--no-terminate": o.terminate = false; break;
      case "-h": case "--help": usage("see test/node/README.md"); break;
      default: usage(`unknown option ${a}`);
    }
  }
  if (!o.url) usage("--url is required");
  if (!o.scenario) usage("--scenario is required");
  if (!["streamable", "sse"].includes(o.transport)) usage("--transport is streamable or sse");
  if (!(o.timeout > 0)) usage("--timeout must be a positive number of seconds");
  return o;
}

// ---------------------------------------------------------------- output

let finished = false;
function finish(obj, code) {
  if (finished) return;
  finished = true;
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (e) {
    line = JSON.stringify({ ok: false, error: `result not serialisable: ${e.message}` });
    code = 1;
  }
  writeOut(line + "\n", () => process.exit(code ?? (obj.ok ? 0 : 1)));
  // If stdout never drains, still leave.
  setTimeout(() => process.exit(code ?? (obj.ok ? 0 : 1)), 2000).unref();
}

function errInfo(e) {
  if (e === undefined || e === null) return e;
  if (typeof e !== "object") return { message: String(e) };
  const o = { name: e.name, message: e.message ?? String(e) };
  if (e.code !== undefined) o.code = e.code;
  if (e.data !== undefined) o.data = e.data;
  if (e.cause !== undefined && e.cause !== e) o.cause = errInfo(e.cause);
  return o;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------- transport tap

// Tap sits between the SDK Client and the real transport: it records every
// JSON-RPC message on the wire and can rewrite the protocolVersion the client
// asks for in `initialize` (SDK 1.x always asks for its latest version).
class Tap {
  constructor(inner, obs, protocolVersion) {
    this.inner = inner;
    this.obs = obs;
    this.protocolVersion = protocolVersion;
    this.initId = undefined;
    inner.onmessage = (m, extra) => {
      this.observe("in", m);
      this.onmessage?.(m, extra);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (e) => this.onerror?.(e);
  }
  get sessionId() { return this.inner.sessionId; }
  get protocolVersionHeader() { return this.inner.protocolVersion; }
  setProtocolVersion(v) { this.inner.setProtocolVersion?.(v); }
  start() { return this.inner.start(); }
  close() { return this.inner.close(); }
  async send(m, opts) {
    if (m && m.method === "initialize") {
      this.initId = m.id;
      if (this.protocolVersion) {
        m = { ...m, params: { ...m.params, protocolVersion: this.protocolVersion } };
      }
      this.obs.initializeRequest = m.params;
    }
    this.observe("out", m);
    return this.inner.send(m, opts);
  }
  observe(dir, m) {
    if (!m || typeof m !== "object") return;
    if (dir === "in" && this.initId !== undefined && m.id === this.initId && !("method" in m)) {
      this.obs.initializeResponse = m.result ?? { error: m.error };
    }
    const w = { dir, method: m.method, id: m.id, atMs: Date.now() - this.obs.t0 };
    if (m.error) w.error = errInfo(m.error);
    const token = m.method === "notifications/progress" ? m.params?.progressToken : m.params?._meta?.progressToken;
    if (token !== undefined) w.progressToken = token;
    if (m.method === "notifications/progress") {
      w.progress = m.params.progress;
      if (m.params.total !== undefined) w.total = m.params.total;
      if (m.params.message !== undefined) w.message = m.params.message;
    }
    this.obs.wire.push(w);
  }
}

// ---------------------------------------------------------------- scenarios

function toolCall(arg, defName, defArgs) {
  const a = arg ?? {};
  return { name: a.name ?? defName, arguments: a.arguments ?? defArgs };
}

async function listAll(fn, key, pick) {
  const items = [];
  let cursor;
  let pages = 0;
  const cursors = [];
  for (;;) {
    const res = await fn(cursor === undefined ? {} : { cursor });
    pages++;
    for (const it of res[key] ?? []) items.push(it);
    if (!res.nextCursor) break;
    if (cursors.includes(res.nextCursor)) throw new Error(`${key}: cursor loop on ${res.nextCursor}`);
    cursors.push(res.nextCursor);
    cursor = res.nextCursor;
    if (pages > 1000) throw new Error(`${key}: more than 1000 pages`);
  }
  return { names: items.map(pick), count: items.length, pages, cursors, items };
}

// wireProgress finds the last outgoing request of `method` on the wire and the
// progress notifications that carried its progressToken, in arrival order,
// and counts those that arrived after its response.
function wireProgress(wire, method) {
  let reqIdx = -1;
  for (let i = wire.length - 1; i >= 0; i--) {
    if (wire[i].dir === "out" && wire[i].method === method) { reqIdx = i; break; }
  }
  if (reqIdx < 0) return { notifications: [], afterResult: 0 };
  const req = wire[reqIdx];
  const notifications = [];
  let responded = false;
  let afterResult = 0;
  for (let i = reqIdx + 1; i < wire.length; i++) {
    const w = wire[i];
    if (w.dir !== "in") continue;
    if (w.method === undefined && w.id === req.id) responded = true;
    if (w.method === "notifications/progress" && w.progressToken === req.progressToken) {
      const n = { progress: w.progress, atMs: w.atMs };
      if (w.total !== undefined) n.total = w.total;
      if (w.message !== undefined) n.message = w.message;
      if (responded) { n.afterResult = true; afterResult++; }
      notifications.push(n);
    }
  }
  return { progressToken: req.progressToken, notifications, afterResult };
}

const scenarios = {
  async initialize(c, ctx) {
    return {
      serverInfo: c.getServerVersion(),
      protocolVersion: ctx.obs.initializeResponse?.protocolVersion,
      requestedProtocolVersion: ctx.obs.initializeRequest?.protocolVersion,
      capabilities: c.getServerCapabilities(),
      instructions: c.getInstructions(),
      sessionId: ctx.transport.sessionId,
    };
  },

  async list(c, ctx) {
    const caps = c.getServerCapabilities() ?? {};
    const out = {};
    const skip = (what) => ({ names: [], count: 0, pages: 0, cursors: [], items: [], skipped: `server has no ${what} capability` });
    out.tools = caps.tools ? await listAll((p) => c.listTools(p), "tools", (t) => t.name) : skip("tools");
    out.prompts = caps.prompts ? await listAll((p) => c.listPrompts(p), "prompts", (p) => p.name) : skip("prompts");
    if (caps.resources) {
      out.resources = await listAll((p) => c.listResources(p), "resources", (r) => r.uri);
      out.resourceTemplates = await listAll((p) => c.listResourceTemplates(p), "resourceTemplates", (r) => r.uriTemplate);
    } else {
      out.resources = skip("resources");
      out.resourceTemplates = skip("resources");
    }
    if (ctx.arg?.brief) for (const k of Object.keys(out)) delete out[k].items;
    return out;
  },

  async call(c, ctx) {
    if (!ctx.arg?.name) throw new Error('call needs --arg \'{"name":"...","arguments":{...}}\'');
    const result = await c.callTool(toolCall(ctx.arg), CallToolResultSchema, ctx.reqOpts());
    return { result };
  },

  async sampling(c, ctx) {
    const params = toolCall(ctx.arg, "trigger-sampling-request", { prompt: "hello from node", maxTokens: 50 });
    const result = await c.callTool(params, CallToolResultSchema, ctx.reqOpts());
    const requests = ctx.serverRequests.filter((r) => r.method === "sampling/createMessage");
    if (requests.length === 0) throw Object.assign(new Error("no sampling/createMessage request reached the client"), { result });
    return { request: requests[0].params, requests: requests.length, result };
  },

  async elicitation(c, ctx) {
    const params = toolCall(ctx.arg, "trigger-elicitation-request", {});
    const result = await c.callTool(params, CallToolResultSchema, ctx.reqOpts());
    const requests = ctx.serverRequests.filter((r) => r.method === "elicitation/create");
    if (requests.length === 0) throw Object.assign(new Error("no elicitation/create request reached the client"), { result });
    return { request: requests[0].params, requests: requests.length, response: requests[0].response, result };
  },

  async roots(c, ctx) {
    const params = toolCall(ctx.arg, "get-roots-list", {});
    const result = await c.callTool(params, CallToolResultSchema, ctx.reqOpts());
    return {
      roots: ROOTS,
      rootsListRequests: ctx.serverRequests.filter((r) => r.method === "roots/list").length,
      result,
    };
  },

  async progress(c, ctx) {
    const params = toolCall(ctx.arg, "trigger-long-running-operation", { duration: 2, steps: 4 });
    const progress = [];
    const t0 = Date.now();
    const result = await c.callTool(params, CallToolResultSchema, ctx.reqOpts({
      onprogress: (p) => progress.push({ ...p, atMs: Date.now() - ctx.obs.t0 }),
    }));
    // The SDK dispatches progress notifications a microtask later than
    // responses, so one that arrives in the same chunk as the result never
    // reaches onprogress (it lands in clientErrors as "unknown token"). The
    // wire view below is in arrival order and is what `count` reports.
    const wire = wireProgress(ctx.obs.wire, "tools/call");
    return {
      count: wire.notifications.length,
      progress: wire.notifications,
      callbackProgress: progress,
      callbackCount: progress.length,
      progressToken: wire.progressToken,
      afterResult: wire.afterResult,
      result,
      callMs: Date.now() - t0,
    };
  },

  async cancel(c, ctx) {
    const a = ctx.arg ?? {};
    const params = toolCall(a, "trigger-long-running-operation", { duration: 20, steps: 20 });
    const ac = new AbortController();
    const progress = [];
    let abortedAt;
    const t0 = Date.now();
    const firstProgress = new Promise((resolve) => {
      const p = c.callTool(params, CallToolResultSchema, ctx.reqOpts({
        signal: ac.signal,
        onprogress: (n) => {
          progress.push({ ...n, atMs: Date.now() - ctx.obs.t0 });
          resolve();
        },
      }));
      ctx.pending = p;
      p.catch(() => resolve());
    });
    const afterMs = a.afterMs;
    if (afterMs !== undefined) await sleep(afterMs);
    else await firstProgress;
    abortedAt = Date.now();
    ac.abort(new Error("cancelled-by-node"));
    let rejected = false;
    let error;
    let result;
    try {
      result = await ctx.pending;
    } catch (e) {
      rejected = true;
      error = errInfo(e);
    }
    const rejectedAfterMs = Date.now() - abortedAt;
    // Give a misbehaving peer a moment to (wrongly) deliver a late result.
    await sleep(a.settleMs ?? 300);
    const wire = wireProgress(ctx.obs.wire, "tools/call");
    const abortAtMs = abortedAt - ctx.obs.t0;
    const progressAfterAbort = wire.notifications.filter((n) => n.atMs > abortAtMs).length;
    const callOut = [...ctx.obs.wire].reverse().find((w) => w.dir === "out" && w.method === "tools/call");
    const responseAfterAbort = ctx.obs.wire.some((w) => w.dir === "in" && w.method === undefined && w.id === callOut?.id);
    const followParams = a.then ?? { name: "echo", arguments: { message: "after-cancel" } };
    const followup = await c.callTool(followParams, CallToolResultSchema, ctx.reqOpts());
    if (!rejected) throw Object.assign(new Error("aborted call did not reject"), { result, followup });
    return {
      cancelled: true,
      rejected,
      cancelNotificationSent: ctx.obs.wire.some((w) => w.dir === "out" && w.method === "notifications/cancelled"),
      error,
      progressBeforeAbort: progress.length,
      progress,
      progressAfterAbort,
      responseAfterAbort,
      abortAfterMs: abortedAt - t0,
      rejectedAfterMs,
      cancelScenarioMs: Date.now() - t0,
      followup,
      lateClientErrors: ctx.clientErrors.slice(),
    };
  },

  async subscribe(c, ctx) {
    const a = typeof ctx.arg === "string" ? { uri: ctx.arg } : (ctx.arg ?? {});
    const uri = a.uri ?? "demo://resource/static/document/architecture.md";
    const timeoutMs = a.timeoutMs ?? 12000;
    const toggle = a.toggle ?? true; // server-everything only sends updates after toggle-subscriber-updates
    const t0 = Date.now();
    await c.subscribeResource({ uri }, ctx.reqOpts());
    const toggles = [];
    let started = false;
    if (toggle) {
      const r = await c.callTool({ name: a.toggleTool ?? "toggle-subscriber-updates", arguments: {} }, CallToolResultSchema, ctx.reqOpts());
      toggles.push(r);
      const text = r.content?.[0]?.text ?? "";
      if (/^Stopped/.test(text)) {
        // Updates were already running for this (shared) upstream session: restart them.
        const r2 = await c.callTool({ name: a.toggleTool ?? "toggle-subscriber-updates", arguments: {} }, CallToolResultSchema, ctx.reqOpts());
        toggles.push(r2);
      }
      started = true;
    }
    const updated = () => ctx.notifications.filter((n) => n.method === "notifications/resources/updated" && n.params?.uri === uri);
    const want = a.count ?? 1;
    while (updated().length < want && Date.now() - t0 < timeoutMs) await sleep(50);
    const waitedMs = Date.now() - t0;
    const updates = updated().map((n) => ({ params: n.params, atMs: n.atMs }));
    await c.unsubscribeResource({ uri }, ctx.reqOpts());
    if (started) {
      toggles.push(await c.callTool({ name: a.toggleTool ?? "toggle-subscriber-updates", arguments: {} }, CallToolResultSchema, ctx.reqOpts()));
    }
    const res = { uri, updates, count: updates.length, waitedMs, toggles };
    if (updates.length < want && !a.allowNone) {
      throw Object.assign(new Error(`no notifications/resources/updated for ${uri} within ${timeoutMs}ms`), res);
    }
    return res;
  },

  async logging(c, ctx) {
    const a = typeof ctx.arg === "string" ? { level: ctx.arg } : (ctx.arg ?? {});
    const level = a.level ?? "debug";
    const durationMs = a.durationMs ?? 5500;
    const toggle = a.toggle ?? true; // server-everything logs only after toggle-simulated-logging
    await c.setLoggingLevel(level, ctx.reqOpts());
    const since = ctx.notifications.length;
    const toggles = [];
    let started = false;
    if (toggle) {
      const r = await c.callTool({ name: a.toggleTool ?? "toggle-simulated-logging", arguments: {} }, CallToolResultSchema, ctx.reqOpts());
      toggles.push(r);
      if (/^Stopped/.test(r.content?.[0]?.text ?? "")) {
        toggles.push(await c.callTool({ name: a.toggleTool ?? "toggle-simulated-logging", arguments: {} }, CallToolResultSchema, ctx.reqOpts()));
      }
      started = true;
    }
    await sleep(durationMs);
    if (started) {
      toggles.push(await c.callTool({ name: a.toggleTool ?? "toggle-simulated-logging", arguments: {} }, CallToolResultSchema, ctx.reqOpts()));
    }
    const messages = ctx.notifications.slice(since)
      .filter((n) => n.method === "notifications/message")
      .map((n) => ({ ...n.params, atMs: n.atMs }));
    return { level, messages, count: messages.length, levels: [...new Set(messages.map((m) => m.level))], toggles };
  },

  async complete(c, ctx) {
    if (!ctx.arg?.ref || !ctx.arg?.argument) {
      throw new Error('complete needs --arg \'{"ref":{"type":"ref/prompt","name":"..."},"argument":{"name":"...","value":"..."}}\'');
    }
    const result = await c.complete(ctx.arg, ctx.reqOpts());
    return { result, values: result.completion?.values ?? [] };
  },

  async prompt(c, ctx) {
    const a = typeof ctx.arg === "string" ? { name: ctx.arg } : ctx.arg;
    if (!a?.name) throw new Error('prompt needs --arg \'{"name":"...","arguments":{...}}\'');
    const result = await c.getPrompt({ name: a.name, arguments: a.arguments }, ctx.reqOpts());
    return { result };
  },

  async read(c, ctx) {
    const uri = typeof ctx.arg === "string" ? ctx.arg : ctx.arg?.uri;
    if (!uri) throw new Error('read needs --arg \'{"uri":"..."}\'');
    const result = await c.readResource({ uri }, ctx.reqOpts());
    return { result };
  },

  async ping(c, ctx) {
    const t0 = Date.now();
    const result = await c.ping(ctx.reqOpts());
    return { result, rttMs: Date.now() - t0 };
  },
};

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const scenario = scenarios[opts.scenario];
  if (!scenario) usage(`unknown scenario ${opts.scenario}; known: ${Object.keys(scenarios).join(", ")}`);
  if (opts.protocolVersion && !SUPPORTED_PROTOCOL_VERSIONS.includes(opts.protocolVersion)) {
    finish({
      ok: false,
      unsupported: true,
      error: `@modelcontextprotocol/sdk 1.x cannot speak protocol version ${opts.protocolVersion}; it supports ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")}`,
    }, 1);
    return;
  }

  const timeoutMs = opts.timeout * 1000;
  const t0 = Date.now();
  const obs = { wire: [], t0 };
  const notifications = [];
  const serverRequests = [];
  const clientErrors = [];

  let client;
  let transport;
  const closeAll = async () => {
    if (!client) return;
    const c = client;
    client = undefined;
    const work = (async () => {
      if (opts.terminate && transport?.inner?.terminateSession && transport.sessionId) {
        try { await transport.inner.terminateSession(); } catch (e) { clientErrors.push(errInfo(e)); }
      }
      await c.close();
    })();
    await Promise.race([work.catch(() => {}), sleep(2000)]);
  };

  let deadlineHit = false;
  const hardTimer = setTimeout(async () => {
    // Last resort: the per-request timeouts below fire a little earlier.
    // From here on this path owns the result: closing the client makes the
    // pending request reject with "Connection closed", which must not be
    // reported as the scenario's outcome.
    deadlineHit = true;
    await Promise.race([closeAll().catch(() => {}), sleep(1000)]);
    finish({
      ok: false,
      scenario: opts.scenario,
      transport: opts.transport,
      error: `timeout: scenario ${opts.scenario} did not finish within ${opts.timeout}s`,
      timeout: true,
      protocolVersion: obs.initializeResponse?.protocolVersion,
      notifications,
      serverRequests,
      clientErrors,
      wire: obs.wire,
    }, 1);
  }, timeoutMs);

  const url = new URL(opts.url);
  const requestInit = { headers: opts.headers };
  const inner = opts.transport === "sse"
    ? new SSEClientTransport(url, { requestInit })
    : new StreamableHTTPClientTransport(url, {
      requestInit,
      reconnectionOptions: { initialReconnectionDelay: 200, maxReconnectionDelay: 2000, reconnectionDelayGrowFactor: 1.5, maxRetries: 2 },
    });
  transport = new Tap(inner, obs, opts.protocolVersion);

  const capabilities = opts.capabilities ?? DEFAULT_CAPABILITIES;
  client = new Client({ name: "mcpedge-e2e-node", version: "1.0.0" }, { capabilities });
  client.onerror = (e) => clientErrors.push(errInfo(e));
  client.fallbackNotificationHandler = async (n) => {
    notifications.push({ method: n.method, params: n.params, atMs: Date.now() - t0 });
  };

  const arg = opts.arg;
  if (capabilities.sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      const response = {
        model: "node-test-model",
        role: "assistant",
        content: { type: "text", text: arg?.samplingText ?? SAMPLED_TEXT },
        stopReason: "endTurn",
      };
      serverRequests.push({ method: req.method, params: req.params, response, atMs: Date.now() - t0 });
      return response;
    });
  }
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      let response;
      const action = arg?.action ?? "accept";
      if (req.params?.mode === "url" || action !== "accept") {
        response = { action };
      } else {
        response = { action, content: arg?.content ?? { name: "node-user" } };
      }
      serverRequests.push({ method: req.method, params: req.params, response, atMs: Date.now() - t0 });
      return response;
    });
  }
  if (capabilities.roots) {
    client.setRequestHandler(ListRootsRequestSchema, async (req) => {
      const response = { roots: ROOTS };
      serverRequests.push({ method: req.method, params: req.params, response, atMs: Date.now() - t0 });
      return response;
    });
  }

  // Per-request timeouts end 300ms before the hard deadline, so a slow peer
  // shows up as the SDK's request-timeout error with all observations.
  const remaining = () => Math.max(100, timeoutMs - 300 - (Date.now() - t0));
  const ctx = {
    arg,
    obs,
    transport,
    notifications,
    serverRequests,
    clientErrors,
    reqOpts: (extra = {}) => ({ timeout: remaining(), maxTotalTimeout: remaining(), ...extra }),
  };

  let out;
  try {
    await client.connect(transport, { timeout: remaining() });
    const res = await scenario(client, ctx);
    out = {
      ok: true,
      scenario: opts.scenario,
      transport: opts.transport,
      ...res,
      protocolVersion: res.protocolVersion ?? obs.initializeResponse?.protocolVersion,
      notifications,
      serverRequests,
      clientErrors,
      elapsedMs: Date.now() - t0,
    };
  } catch (e) {
    const extra = {};
    if (e && typeof e === "object") {
      for (const k of Object.keys(e)) if (!["name", "message", "code", "data", "stack", "cause"].includes(k)) extra[k] = e[k];
    }
    out = {
      ok: false,
      scenario: opts.scenario,
      transport: opts.transport,
      error: e?.message ?? String(e),
      errorDetail: errInfo(e),
      ...extra,
      protocolVersion: obs.initializeResponse?.protocolVersion,
      notifications,
      serverRequests,
      clientErrors,
      wire: obs.wire,
      elapsedMs: Date.now() - t0,
    };
  }
  if (deadlineHit) return; // the hard-deadline path reports
  clearTimeout(hardTimer);
  await closeAll();
  if (deadlineHit) return;
  finish(out);
}

process.on("unhandledRejection", (e) => {
  console.error("unhandled rejection:", e);
});

main().catch((e) => {
  if (e instanceof UsageError) finish({ ok: false, usage: true, error: e.message }, 2);
  else finish({ ok: false, error: `client crashed: ${e?.stack ?? e}` }, 1);
});
