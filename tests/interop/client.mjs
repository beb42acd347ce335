// Interop client for tests/interop: drives the gateway with the official
// TypeScript MCP SDK and prints what it saw as JSON lines on stdout:
//
//   {"event":"ready"}     connected, steps done, notification stream open
//                         (GET, or subscriptions/listen in 2026-07-28): add a tool now
//   {"event":"summary", ...}
//
// Usage: node client.mjs <gateway URL> <variant>
//   MCPGW_INTEROP_NODE_MODULES  build/npm/interop/node_modules (absolute)
//   variant  v1           @modelcontextprotocol/sdk (session-era only; no version choice)
//            v2           @modelcontextprotocol/client, default negotiation (legacy initialize)
//            v2-session   @modelcontextprotocol/client, supportedProtocolVersions pinned to 2025-06-18
//            v2-auto      @modelcontextprotocol/client, versionNegotiation auto (probe 2026-07-28, fall back)
//            v2-2026      @modelcontextprotocol/client, versionNegotiation pinned to 2026-07-28
//
// Every step is attempted even when an earlier one failed; errors are
// reported per step so the Go test can name each broken interaction.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [url, variant = 'v1'] = process.argv.slice(2);
const nm = process.env.MCPGW_INTEROP_NODE_MODULES;
if (!url || !nm) {
  console.error('usage: MCPGW_INTEROP_NODE_MODULES=dir node client.mjs <url> [variant]');
  process.exit(2);
}
const listChangedTimeoutMs = Number(process.env.MCPGW_INTEROP_LIST_CHANGED_TIMEOUT_MS ?? 10000);

const load = (p) => import(pathToFileURL(join(nm, p)).href);
const pkgVersion = (name) => JSON.parse(readFileSync(join(nm, name, 'package.json'), 'utf8')).version;

let Client, StreamableHTTPClientTransport, pkg;
if (variant === 'v1') {
  pkg = '@modelcontextprotocol/sdk';
  ({ Client } = await load(`${pkg}/dist/esm/client/index.js`));
  ({ StreamableHTTPClientTransport } = await load(`${pkg}/dist/esm/client/streamableHttp.js`));
} else {
  pkg = '@modelcontextprotocol/client';
  ({ Client, StreamableHTTPClientTransport } = await load(`${pkg}/dist/index.mjs`));
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const errText = (e) => (e && (e.stack || e.message)) ? String(e.message ?? e) : String(e);
const errors = {};
async function step(name, fn) {
  try {
    return await fn();
  } catch (e) {
    errors[name] = errText(e);
    return undefined;
  }
}

// Resolves when the notification stream (standalone GET, or POST
// subscriptions/listen) is answered, so that the gateway has somewhere to
// send notifications before the test adds a tool.
let sseOpen;
const sseOpened = new Promise((r) => { sseOpen = r; });
const httpLog = [];
const fetchSpy = async (input, init) => {
  const method = init?.method ?? 'GET';
  let rpc = '';
  if (typeof init?.body === 'string') {
    try {
      const b = JSON.parse(init.body);
      rpc = ' ' + (Array.isArray(b) ? b.map((m) => m.method ?? 'response').join(',') : (b.method ?? 'response'));
    } catch { /* not JSON */ }
  }
  const res = await fetch(input, init);
  httpLog.push(`${method}${rpc} ${res.status}`);
  if ((method === 'GET' || rpc === ' subscriptions/listen') && res.ok) sseOpen();
  return res;
};

// The list_changed callback: the SDK installs it only if the server
// advertises tools.listChanged, and calls it on notifications/tools/list_changed
// (autoRefresh: with the re-fetched list).
let notified;
const notifiedP = new Promise((r) => { notified = r; });
const clientOptions = {
  capabilities: {},
  listChanged: {
    tools: {
      autoRefresh: true,
      debounceMs: 0,
      onChanged: (err, tools) => notified({ err: err ? errText(err) : null, tools: tools ? tools.map((t) => t.name) : null }),
    },
  },
};
switch (variant) {
  case 'v2-session':
    clientOptions.supportedProtocolVersions = ['2025-06-18'];
    break;
  case 'v2-auto':
    clientOptions.versionNegotiation = { mode: 'auto' };
    break;
  case 'v2-2026':
    clientOptions.versionNegotiation = { mode: { pin: '2026-07-28' } };
    break;
}

const client = new Client({ name: 'mcpgw-interop', version: '0.0.0' }, clientOptions);
const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: fetchSpy });
const summary = { event: 'summary', variant, sdk: pkg, sdkVersion: pkgVersion(pkg) };

const connected = await step('connect', async () => {
  await client.connect(transport);
  return true;
});
summary.connected = !!connected;
if (connected) {
  summary.protocolVersion = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion ?? null;
  summary.protocolEra = client.getProtocolEra?.() ?? null;
  summary.sessionId = !!transport.sessionId;
  summary.serverInfo = client.getServerVersion() ?? null;
  summary.toolsListChanged = !!client.getServerCapabilities()?.tools?.listChanged;

  summary.tools = await step('listTools', async () => (await client.listTools()).tools.map((t) => t.name).sort());

  summary.echo = await step('callTool echo_echo', async () => {
    const r = await client.callTool({ name: 'echo_echo', arguments: { text: 'hello from typescript' } });
    return { isError: !!r.isError, text: r.content?.[0]?.text, structured: r.structuredContent ?? null };
  });
  summary.add = await step('callTool math_add', async () => {
    const r = await client.callTool({ name: 'math_add', arguments: { a: 2, b: 3 } });
    return { isError: !!r.isError, text: r.content?.[0]?.text, structured: r.structuredContent ?? null };
  });
  summary.prompts = await step('listPrompts', async () => (await client.listPrompts()).prompts.map((p) => p.name).sort());
  summary.prompt = await step('getPrompt echo_greet', async () => {
    const r = await client.getPrompt({ name: 'echo_greet', arguments: { who: 'gopher' } });
    return { description: r.description, role: r.messages?.[0]?.role, text: r.messages?.[0]?.content?.text };
  });
  summary.resources = await step('listResources', async () => (await client.listResources()).resources.map((r) => r.uri).sort());
  summary.resource = await step('readResource', async () => {
    const r = await client.readResource({ uri: 'math://constants/pi' });
    const c = r.contents?.[0] ?? {};
    return { uri: c.uri, mimeType: c.mimeType, text: c.text };
  });

  // list_changed: tell the test to add a tool once the notification stream
  // is open: the GET stream in the session era, a subscriptions/listen
  // request in the stateless era (2026-07-28).
  summary.notificationStreamOpen = await Promise.race([sseOpened.then(() => true), sleep(5000).then(() => false)]);
  out({ event: 'ready' });
  const got = await Promise.race([notifiedP, sleep(listChangedTimeoutMs).then(() => null)]);
  summary.listChanged = got ? { notified: true, ...got } : { notified: false };
  if (!got) errors['list_changed'] = `no notifications/tools/list_changed within ${listChangedTimeoutMs} ms`;
  summary.toolsAfter = await step('listTools after list_changed', async () => (await client.listTools()).tools.map((t) => t.name).sort());

  await step('close', () => client.close());
}
summary.http = httpLog;
summary.errors = errors;
out(summary);
process.exit(0);

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
