// The OpenClaw plugin's tools, as its defineToolPlugin entry registers them,
// run through their execute functions against the real `secrets` CLI and a
// real daemon in a temporary AGENT_SECRETS_HOME. SECRETS_BIN names the binary
// (ctest sets it); OpenClaw's SDK comes from tests/openclaw (make deps).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

// First the host's resolve hook, then (dynamically, so that the hook sees
// them) the plugin and the SDK it is written against.
import "./openclaw-host.mjs";
const { getToolPluginMetadata } = await import("openclaw/plugin-sdk/tool-plugin");
const { default: plugin, createTools, TOOL_NAMES } = await import("../index.js");

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
const BIN = process.env.SECRETS_BIN || join(ROOT, "..", "..", "build", "secrets");

let home;
let scratch;
let daemon;
let tools; // name -> tool, cli_path = a wrapper that logs argv, then execs the real CLI
let argvLog;

function cli(...args) {
  return execFileSync(BIN, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function status() {
  return JSON.parse(cli("status")).result;
}

async function waitForDaemon() {
  for (let i = 0; i < 200; i++) {
    if (daemon.exitCode !== null) {
      throw new Error(`secrets serve exited with ${daemon.exitCode}`);
    }
    try {
      status();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("the daemon did not answer within 10 s");
}

before(async () => {
  assert.ok(existsSync(BIN), `no secrets binary at ${BIN} (set SECRETS_BIN)`);
  home = mkdtempSync(join(tmpdir(), "as-oc-home-"));
  chmodSync(home, 0o700);
  scratch = mkdtempSync(join(tmpdir(), "as-oc-scratch-"));
  process.env.AGENT_SECRETS_HOME = home;
  delete process.env.AGENT_SECRETS_SOCKET;
  cli("init");
  const log = openSync(join(scratch, "daemon.log"), "w");
  daemon = spawn(BIN, ["serve"], { stdio: ["ignore", log, log] });
  closeSync(log);
  await waitForDaemon();

  argvLog = join(scratch, "argv.log");
  const wrapper = join(scratch, "secrets-wrapper");
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$@" >> '${argvLog}'\nexec '${BIN}' "$@"\n`, { mode: 0o755 });
  tools = Object.fromEntries(createTools({ cli_path: wrapper }).map((t) => [t.name, t]));
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const done = new Promise((r) => daemon.once("exit", r));
    daemon.kill("SIGTERM");
    await done;
  }
  rmSync(home, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

const run = (name, params = {}) => tools[name].execute("call-1", params);

test("the manifest, package.json and register() agree on every tool", () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, "openclaw.plugin.json"), "utf8"));
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  assert.equal(manifest.id, "agent-secrets");
  assert.deepEqual(Object.keys(manifest.configSchema.properties).sort(), ["cli_path", "client_id_prefix", "default_ttl"]);
  assert.deepEqual([...manifest.contracts.tools].sort(), [...TOOL_NAMES].sort());
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.openclaw.extensions, ["./index.js"]);
  assert.ok(pkg.peerDependencies.openclaw);
  assert.ok(pkg.dependencies.typebox);
  for (const dir of manifest.skills) {
    assert.ok(existsSync(join(ROOT, dir, "SKILL.md")), `skill dir ${dir} has no SKILL.md`);
  }
  // The plugin ships a copy of the repository's skill (a symlink would break
  // `openclaw plugins install PATH`, which copies it, and npm pack, which
  // leaves it out); the copy must not drift.
  assert.equal(
    readFileSync(join(ROOT, "skills", "secret-management", "SKILL.md"), "utf8"),
    readFileSync(join(ROOT, "..", "..", "skills", "secret-management", "SKILL.md"), "utf8"),
    "integrations/openclaw/skills/secret-management/SKILL.md differs from skills/secret-management/SKILL.md: copy it",
  );

  // defineToolPlugin's metadata is what `openclaw plugins build` writes.
  const meta = getToolPluginMetadata(plugin);
  assert.ok(meta, "index.js's default export is not a defineToolPlugin entry");
  assert.equal(meta.id, manifest.id);
  assert.deepEqual(meta.configSchema, manifest.configSchema);
  assert.deepEqual(meta.tools.map((t) => t.name), manifest.contracts.tools);

  // register() as OpenClaw calls it; a factory registration (secrets_lease)
  // is a function of the tool context, called here as OpenClaw calls it.
  const registered = [];
  plugin.register({
    pluginConfig: {},
    registerTool: (tool, opts) => {
      const made = typeof tool === "function" ? tool({}) : tool;
      if (opts?.name) {
        assert.equal(made.name, opts.name);
      }
      registered.push([made, opts]);
    },
  });
  assert.deepEqual(registered.map(([t]) => t.name).sort(), [...manifest.contracts.tools].sort());
  for (const [tool, opts] of registered) {
    assert.equal(Boolean(opts?.optional), Boolean(manifest.toolMetadata[tool.name]?.optional), tool.name);
    assert.equal(tool.parameters.type, "object", tool.name);
    assert.equal(typeof tool.execute, "function", tool.name);
    assert.ok(tool.description, tool.name);
  }
  assert.deepEqual(
    registered.filter(([, o]) => o?.optional).map(([t]) => t.name).sort(),
    ["secrets_add", "secrets_killswitch"],
  );
});

test("add, list, lease (with and without reveal), revoke, audit", async () => {
  const value = "v@lue with \"quotes\" 'single' $(touch nope) `id` ; & | \\ \n second line\n";
  await run("secrets_add", { name: "api_key", value });
  // The value went on stdin: it is in no argv.
  assert.ok(!readFileSync(argvLog, "utf8").includes("v@lue"), "the value reached argv");

  const list = await run("secrets_list");
  assert.deepEqual(list.details.secrets.map((s) => s.name), ["api_key"]);
  assert.ok(!JSON.stringify(list).includes("v@lue"));

  const hidden = await run("secrets_lease", { name: "api_key", ttl: "10m" });
  assert.match(hidden.details.lease_id, /^[0-9a-f-]{36}$/);
  assert.equal(hidden.details.client_id, "openclaw");
  assert.ok(hidden.details.expires_at);
  assert.ok(!JSON.stringify(hidden).includes("v@lue"), "reveal: false must not return the value");

  const shown = await run("secrets_lease", { name: "api_key", reveal: true, client_id: "task-7" });
  assert.equal(shown.details.value, value, "the value round-trips byte-exact");
  assert.equal(shown.content[0].text, value);
  assert.equal(shown.details.client_id, "openclaw-task-7");
  assert.equal(status().active_leases, 2);

  const revoked = await run("secrets_revoke", { lease_id: hidden.details.lease_id });
  assert.equal(revoked.details.lease_id, hidden.details.lease_id);
  assert.equal(status().active_leases, 1);

  const audit = await run("secrets_audit", { tail: 5 });
  const actions = JSON.stringify(audit.details);
  assert.match(actions, /lease_acquire/);
  assert.match(actions, /lease_revoke/);
  assert.ok(!actions.includes("v@lue"));
  assert.ok(!readFileSync(argvLog, "utf8").includes("v@lue"));
});

test("hostile names, ids and options are passed literally or rejected, never interpreted", async () => {
  const marker = join(scratch, "pwned");
  const hostile = [
    `x; touch ${marker}`,
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `a"b'c`,
    "--all",
    "-h",
    "--force",
  ];
  await run("secrets_add", { name: "keep", value: "k" });
  const keep = await run("secrets_lease", { name: "keep" });
  const leasesBefore = status().active_leases;
  for (const name of hostile) {
    await assert.rejects(run("secrets_add", { name, value: "x" }), /invalid secret name/, name);
    await assert.rejects(run("secrets_lease", { name }), /not found|invalid/, name);
    await assert.rejects(run("secrets_revoke", { lease_id: name }), /not found|invalid/, name);
  }
  // "--all" as a lease id did not fire the killswitch; "-h" printed no help.
  assert.equal(status().active_leases, leasesBefore);
  assert.equal(existsSync(marker), false, "a shell ran");
  // Each hostile word reached the CLI as one argument, after "--".
  const argv = readFileSync(argvLog, "utf8").split("\n");
  for (const name of hostile.filter((n) => !n.includes("\n"))) {
    const i = argv.indexOf(name);
    assert.ok(i > 0 && argv[i - 1] === "--", `${name} was not one literal argument after --`);
  }

  // Option values are glued with "=": a ttl or client id cannot become a flag.
  await assert.rejects(run("secrets_lease", { name: "keep", ttl: "--json" }), /ttl|duration/i);
  const odd = await run("secrets_lease", { name: "keep", client_id: `$(touch ${marker}) --all` });
  assert.equal(odd.details.client_id, `openclaw-$(touch ${marker}) --all`);
  assert.equal(existsSync(marker), false);
  await run("secrets_revoke", { lease_id: odd.details.lease_id });

  for (const tail of [-1, 0, 1.5, "5; rm -rf /", 10001]) {
    await assert.rejects(run("secrets_audit", { tail }), /tail/, String(tail));
  }
  await assert.rejects(run("secrets_lease", { name: "" }), /name/);
  await assert.rejects(run("secrets_lease", { name: 42 }), /name/);
  await assert.rejects(run("secrets_add", { name: "empty", value: "" }), /value/);
  await run("secrets_revoke", { lease_id: keep.details.lease_id });
});

test("secrets_add takes no rotation hook: a tool cannot make the daemon run a command", async () => {
  const marker = join(scratch, "hooked");
  assert.deepEqual(Object.keys(tools.secrets_add.parameters.properties).sort(), ["force", "name", "value"]);
  await assert.rejects(
    run("secrets_add", { name: "hooked", value: "v-1234567", rotate_via: `touch ${marker}` }),
    /rotation hooks are set by the user/,
  );
  await assert.rejects(run("secrets_add", { name: "hooked", value: "v-1234567", rotateVia: "x" }), /unknown parameter/);
  assert.ok(!readFileSync(argvLog, "utf8").includes("--rotate-via"), "a hook reached the CLI");
  // Had it been recorded, the user's next rotate would have run it.
  let rotated;
  try {
    rotated = cli("rotate", "hooked");
  } catch {
    // not found (nothing was added) or refused: either way nothing ran
  }
  assert.equal(rotated, undefined);
  assert.equal(existsSync(marker), false, "the tool's hook ran");
});

test("errors carry the CLI's message and fix, and no value", async () => {
  await assert.rejects(run("secrets_lease", { name: "missing" }), (err) => {
    assert.match(err.message, /secret missing not found/);
    assert.match(err.message, /fix: /);
    assert.equal(err.code, "not_found");
    return true;
  });
  await assert.rejects(run("secrets_revoke", { lease_id: "00000000-0000-4000-8000-000000000000" }), /not found/);
  const missingCli = Object.fromEntries(createTools({ cli_path: join(scratch, "no-such-secrets") }).map((t) => [t.name, t]));
  await assert.rejects(missingCli.secrets_status.execute("c", {}), /not found.*cli_path/);
});

test("config: default_ttl and client_id_prefix apply", async () => {
  const t = Object.fromEntries(createTools({ cli_path: BIN, default_ttl: "7m", client_id_prefix: "bot" }).map((x) => [x.name, x]));
  await run("secrets_add", { name: "cfg", value: "c" });
  const l = await t.secrets_lease.execute("c", { name: "cfg" });
  assert.equal(l.details.client_id, "bot");
  assert.equal(l.details.ttl, "7m0s");
  await t.secrets_revoke.execute("c", { lease_id: l.details.lease_id });
});

test("status and the killswitch (confirm required)", async () => {
  const st = await run("secrets_status");
  assert.equal(st.details.running, true);
  await run("secrets_lease", { name: "cfg" });
  await run("secrets_lease", { name: "cfg" });
  assert.ok(status().active_leases >= 2);
  await assert.rejects(run("secrets_killswitch", { confirm: false }), /confirm: true/);
  await assert.rejects(run("secrets_killswitch", {}), /confirm: true/);
  assert.ok(status().active_leases >= 2);
  await run("secrets_killswitch", { confirm: true });
  assert.equal(status().active_leases, 0);
});

test("a cancelled call ends the CLI child", async () => {
  const slow = join(scratch, "slow-secrets");
  const pidFile = join(scratch, "slow.pid");
  writeFileSync(slow, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`, { mode: 0o755 });
  const t = Object.fromEntries(createTools({ cli_path: slow }).map((x) => [x.name, x]));
  for (const [name, params] of [
    ["secrets_status", {}],
    ["secrets_lease", { name: "k" }],
  ]) {
    rmSync(pidFile, { force: true });
    const ac = new AbortController();
    const started = Date.now();
    const call = t[name].execute("c", params, ac.signal);
    while (!existsSync(pidFile)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    ac.abort();
    await assert.rejects(call, /cancelled/, name);
    assert.ok(Date.now() - started < 10_000, name);
    const pid = Number(readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    assert.throws(() => process.kill(pid, 0), /ESRCH/, `${name}: the CLI child still runs`);
  }
});
