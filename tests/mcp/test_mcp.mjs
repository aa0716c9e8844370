// `secrets mcp` driven by the official MCP TypeScript SDK (@modelcontextprotocol/sdk 1.x)
// against a real daemon in a throw-away AGENT_SECRETS_HOME, plus raw protocol checks
// (version negotiation, -32601, notifications, parse errors, EOF).
//
//   SECRETS_BIN=build/secrets node --test tests/mcp/test_mcp.mjs
// Dependencies come from the committed lock file: `make deps` runs `npm ci` here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.SECRETS_BIN ?? path.join(here, '..', '..', 'build', 'secrets');
const VALUE = 'sk-mcp-test-9f3a7c1e55d0';
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let home;
let env;
let daemon;
const open = []; // clients and children to close even when a test fails

function secrets(args, input) {
  const r = spawnSync(BIN, args, { env, input, encoding: 'utf8' });
  assert.equal(r.status, 0, `secrets ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

async function startDaemon() {
  daemon = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => { log += d; });
  const sock = path.join(home, 'agent-secrets.sock');
  // Readiness, not timing: wait until the daemon answers `secrets status`.
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(sock) && spawnSync(BIN, ['status'], { env }).status === 0) return;
    if (daemon.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daemon did not start: ${log}`);
}

async function connect() {
  const transport = new StdioClientTransport({ command: BIN, args: ['mcp'], env, stderr: 'pipe' });
  const client = new Client({ name: 'agent-secrets-test', version: '1.0.0' });
  await client.connect(transport);
  open.push(() => client.close());
  return client;
}

function textOf(result) {
  assert.equal(result.content.length, 1);
  assert.equal(result.content[0].type, 'text');
  return result.content[0].text;
}

// A successful tool call: its JSON result.
async function ok(client, name, args = {}) {
  const r = await client.callTool({ name, arguments: args });
  assert.notEqual(r.isError, true, `${name} failed: ${textOf(r)}`);
  return JSON.parse(textOf(r));
}

// A failed tool call: isError with a text naming the error and its fix.
async function fails(client, name, args, pattern) {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(r.isError, true, `${name} should fail: ${textOf(r)}`);
  const text = textOf(r);
  assert.match(text, pattern);
  assert.match(text, /\nfix: \S/);
  assert.ok(!text.includes(VALUE));
  return text;
}

// Raw stdio: send lines, read reply lines one at a time.
function raw() {
  const child = spawn(BIN, ['mcp'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  open.push(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    send: (obj) => child.stdin.write((typeof obj === 'string' ? obj : JSON.stringify(obj)) + '\n'),
    async next() {
      const { value, done } = await lines.next();
      assert.ok(!done, 'secrets mcp closed stdout');
      const msg = JSON.parse(value);
      assert.equal(msg.jsonrpc, '2.0');
      return msg;
    },
    async close() {
      child.stdin.end();
      const [code] = await new Promise((r) => child.on('exit', (...a) => r(a)));
      return code;
    },
  };
}

before(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'secrets-mcp-'));
  fs.chmodSync(home, 0o700);
  env = { ...process.env, AGENT_SECRETS_HOME: home };
  delete env.AGENT_SECRETS_SOCKET;
  secrets(['init']);
});

after(async () => {
  for (const close of open) await close();
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.on('exit', r));
  }
  fs.rmSync(home, { recursive: true, force: true });
});

test('without a daemon, tools answer isError with the fix', async () => {
  const client = await connect();
  const text = await fails(client, 'secrets_status', {}, /daemon_not_running/);
  assert.match(text, /secrets serve/);
  await client.close();
  await startDaemon();
  secrets(['add', 'api_key'], VALUE);
});

test('the SDK connects, negotiates and lists honest tools', async () => {
  const client = await connect();
  assert.equal(client.getServerVersion().name, 'agent-secrets');
  assert.deepEqual(client.getServerCapabilities().tools, { listChanged: false });
  await client.ping();
  const { tools } = await client.listTools();
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  assert.deepEqual(Object.keys(byName).sort(), [
    'secrets_audit', 'secrets_lease', 'secrets_list', 'secrets_revoke', 'secrets_revoke_all', 'secrets_status',
  ]);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', t.name);
    assert.equal(typeof t.description, 'string');
    assert.equal(typeof t.annotations.readOnlyHint, 'boolean', t.name);
    assert.equal(typeof t.annotations.destructiveHint, 'boolean', t.name);
  }
  for (const n of ['secrets_list', 'secrets_status', 'secrets_audit']) {
    assert.equal(byName[n].annotations.readOnlyHint, true, n);
    assert.equal(byName[n].annotations.destructiveHint, false, n);
  }
  for (const n of ['secrets_revoke', 'secrets_revoke_all']) {
    assert.equal(byName[n].annotations.readOnlyHint, false, n);
    assert.equal(byName[n].annotations.destructiveHint, true, n);
  }
  assert.equal(byName.secrets_lease.annotations.readOnlyHint, false);
  assert.deepEqual(byName.secrets_lease.inputSchema.required, ['name']);
  assert.equal(byName.secrets_lease.inputSchema.properties.reveal.default, false);
  assert.deepEqual(byName.secrets_revoke.inputSchema.required, ['lease_id']);
  assert.deepEqual(byName.secrets_revoke_all.inputSchema.required, ['confirm']);
  // A rotation hook is a command the daemon runs: no tool takes or suggests one.
  for (const t of tools) {
    for (const key of Object.keys(t.inputSchema.properties ?? {})) {
      assert.ok(!/rotate|hook|command/i.test(key), `${t.name} takes ${key}`);
    }
    assert.ok(!/rotate[-_]via|hook allow/i.test(t.description), t.name);
  }
  await client.close();
});

test('every tool against the daemon: results and errors', async () => {
  const client = await connect();

  const list = await ok(client, 'secrets_list');
  assert.deepEqual(list.secrets.map((s) => s.name), ['api_key']);
  assert.ok(!JSON.stringify(list).includes(VALUE));

  const status = await ok(client, 'secrets_status');
  assert.equal(status.running, true);
  assert.equal(status.secrets_count, 1);

  // reveal defaults to false: a lease id and an expiry, never the value.
  const hidden = await ok(client, 'secrets_lease', { name: 'api_key' });
  assert.match(hidden.lease_id, UUID4);
  assert.ok(!Number.isNaN(Date.parse(hidden.expires_at)));
  assert.deepEqual(Object.keys(hidden).sort(), ['expires_at', 'hint', 'lease_id', 'revealed', 'secret_name']);
  assert.equal(hidden.revealed, false);
  assert.ok(!JSON.stringify(hidden).includes(VALUE));

  const shown = await ok(client, 'secrets_lease', { name: 'api_key', ttl: '5m', client_id: 'mcp-test', reveal: true });
  assert.equal(shown.value, VALUE);
  assert.equal(shown.client_id, 'mcp-test');
  assert.match(shown.lease_id, UUID4);
  assert.equal((await ok(client, 'secrets_status')).active_leases, 2);

  await fails(client, 'secrets_lease', { name: 'nope' }, /not_found.*nope/);
  await fails(client, 'secrets_lease', { name: 'api_key', ttl: 'forever' }, /invalid_params/);
  await fails(client, 'secrets_lease', { name: 'api_key', reveal: 'yes' }, /reveal must be a boolean/);
  await fails(client, 'secrets_lease', { name: 'api_key', shell: 'rm -rf ~' }, /unknown argument shell/);
  await fails(client, 'secrets_lease', {}, /missing argument name/);

  const revoked = await ok(client, 'secrets_revoke', { lease_id: shown.lease_id });
  assert.equal(revoked.success, true);
  await fails(client, 'secrets_revoke', { lease_id: shown.lease_id }, /lease/);
  await fails(client, 'secrets_revoke', { lease_id: 'not-a-lease' }, /lease/);

  const audit = await ok(client, 'secrets_audit', { tail: 0 });
  const actions = audit.entries.map((e) => `${e.action}:${e.client_id ?? ''}`);
  assert.ok(actions.includes('lease_acquire:mcp'), actions.join(' '));
  assert.ok(actions.includes('lease_acquire:mcp-test'), actions.join(' '));
  assert.ok(audit.entries.some((e) => e.action === 'lease_revoke' && e.lease_id === shown.lease_id));
  assert.ok(!JSON.stringify(audit).includes(VALUE));
  assert.equal((await ok(client, 'secrets_audit', { tail: 2 })).entries.length, 2);
  assert.equal((await ok(client, 'secrets_audit')).entries.length <= 20, true);
  await fails(client, 'secrets_audit', { tail: -1 }, /tail must be a non-negative integer/);

  // The killswitch needs confirm: true.
  await fails(client, 'secrets_revoke_all', {}, /missing argument confirm/);
  await fails(client, 'secrets_revoke_all', { confirm: false }, /refused without confirm: true/);
  assert.equal((await ok(client, 'secrets_status')).active_leases, 1);
  const all = await ok(client, 'secrets_revoke_all', { confirm: true });
  assert.equal(all.success, true);
  assert.equal(all.leases_revoked, 1);
  assert.equal((await ok(client, 'secrets_status')).active_leases, 0);

  // An unknown tool is a protocol error, not a tool result.
  await assert.rejects(client.callTool({ name: 'secrets_get', arguments: {} }),
    (e) => e instanceof McpError && e.code === -32602);
  await client.close();
});

test('raw protocol: versions, ping, -32601, notifications, parse errors, EOF', async () => {
  const s = raw();
  let id = 0;
  for (const v of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
    s.send({ jsonrpc: '2.0', id: ++id, method: 'initialize',
      params: { protocolVersion: v, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    const r = await s.next();
    assert.equal(r.id, id);
    assert.equal(r.result.protocolVersion, v);
    assert.equal(r.result.serverInfo.name, 'agent-secrets');
  }
  s.send({ jsonrpc: '2.0', id: ++id, method: 'initialize',
    params: { protocolVersion: '1999-01-01', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
  assert.equal((await s.next()).result.protocolVersion, '2025-11-25');

  // Notifications get no reply: the next line is the ping's.
  s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } });
  s.send({ jsonrpc: '2.0', id: 'p', method: 'ping' });
  assert.deepEqual(await s.next(), { jsonrpc: '2.0', id: 'p', result: {} });

  for (const method of ['server/discover', 'resources/list', 'prompts/list', 'secrets.lease']) {
    s.send({ jsonrpc: '2.0', id: ++id, method, params: {} });
    const r = await s.next();
    assert.equal(r.id, id);
    assert.equal(r.error.code, -32601, method);
  }
  s.send('{"jsonrpc":"2.0","id":');
  let r = await s.next();
  assert.equal(r.id, null);
  assert.equal(r.error.code, -32700);
  s.send({ jsonrpc: '1.0', id: 7, method: 'ping' });
  assert.equal((await s.next()).error.code, -32600);
  s.send({ jsonrpc: '2.0', id: 8, method: 'initialize', params: {} });
  assert.equal((await s.next()).error.code, -32602);
  s.send({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'secrets_list', arguments: 'x' } });
  assert.equal((await s.next()).error.code, -32602);

  // A tools/call through the raw pipe: the lease hides the value.
  s.send({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'secrets_lease', arguments: { name: 'api_key' } } });
  r = await s.next();
  assert.equal(r.result.isError, false);
  assert.ok(!r.result.content[0].text.includes(VALUE));

  assert.equal(await s.close(), 0, 'secrets mcp exits 0 on stdin EOF');
});
