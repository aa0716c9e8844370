// OpenClaw's own tools on the plugin: `openclaw plugins build --check` and
// `openclaw plugins validate` (the authoring checks), then a load by OpenClaw
// (`plugins install --link`, then `plugins inspect --runtime`, which imports
// index.js and lists what register() registered). The OpenClaw CLI and the
// Node 24 it needs come from tests/openclaw (make deps); each test runs it in
// a temporary HOME and state directory, so no real OpenClaw setup is read or
// changed.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { HOST_CLI, HOST_NODE } from "./openclaw-host.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(ROOT, "openclaw.plugin.json"), "utf8"));
const TOOLS = manifest.contracts.tools;
const OPTIONAL = ["secrets_add", "secrets_killswitch"];

let scratch;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "as-oc-cli-"));
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

// A fresh OpenClaw home: its own HOME, state directory and config file, whose
// logging.file keeps OpenClaw's log in it (by default /tmp/openclaw/).
function freshHome(name) {
  const dir = join(scratch, name);
  mkdirSync(join(dir, "home"), { recursive: true });
  mkdirSync(join(dir, "state"), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "state", "openclaw.json"), JSON.stringify({ logging: { file: join(dir, "openclaw.log") } }));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OPENCLAW_")));
  return {
    ...env,
    PATH: `${dirname(HOST_NODE)}:${process.env.PATH}`,
    HOME: join(dir, "home"),
    OPENCLAW_STATE_DIR: join(dir, "state"),
    OPENCLAW_CONFIG_PATH: join(dir, "state", "openclaw.json"),
    NO_COLOR: "1",
  };
}

// Runs `openclaw ARGS` with the host's Node; resolves to { code, stdout, stderr }.
function openclaw(args, env) {
  return new Promise((resolve) => {
    execFile(HOST_NODE, [HOST_CLI, ...args], { env, timeout: 240_000, maxBuffer: 32 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr, error });
    });
  });
}

const show = (r) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

test("the OpenClaw host is 2026.9.x on Node >= 24.16", async () => {
  const r = await openclaw(["--version"], freshHome("version"));
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /OpenClaw 2026\.9\.\d+/);
  const node = await new Promise((resolve, reject) =>
    execFile(HOST_NODE, ["-p", "process.versions.node"], (e, out) => (e ? reject(e) : resolve(out.trim()))),
  );
  const [major, minor] = node.split(".").map(Number);
  assert.ok(major > 24 || (major === 24 && minor >= 16), `Node ${node} is older than 24.16`);
});

test("plugins build --check: openclaw.plugin.json and package.json are what index.js generates", async () => {
  const r = await openclaw(["plugins", "build", "--root", ROOT, "--entry", "./index.js", "--check"], freshHome("build"));
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /Plugin metadata is up to date/);
});

test("plugins validate accepts the plugin", async () => {
  const r = await openclaw(["plugins", "validate", "--root", ROOT, "--entry", "./index.js", "--json"], freshHome("validate"));
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(JSON.parse(r.stdout), { valid: true, pluginId: "agent-secrets", errors: [] });
});

// A copy of the plugin with one file replaced, for the validator's negatives.
function copyWith(name, file, text) {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const f of ["index.js", "package.json", "openclaw.plugin.json"]) {
    copyFileSync(join(ROOT, f), join(dir, f));
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  mkdirSync(join(dir, "skills"));
  symlinkSync(join(ROOT, "skills", "secret-management"), join(dir, "skills", "secret-management"));
  writeFileSync(join(dir, file), text);
  return dir;
}

test("plugins validate rejects a stale manifest and an entry without defineToolPlugin", async () => {
  const stale = copyWith(
    "stale",
    "openclaw.plugin.json",
    JSON.stringify({ ...manifest, contracts: { tools: TOOLS.filter((t) => t !== "secrets_killswitch") } }),
  );
  let r = await openclaw(["plugins", "validate", "--root", stale, "--entry", "./index.js"], freshHome("stale"));
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /contracts\.tools is missing: secrets_killswitch/);

  // The plugin's former shape: a hand-written entry object (issue 18).
  const bare = copyWith(
    "bare",
    "index.js",
    `export default { id: "agent-secrets", name: "agent-secrets", description: "x", register() {} };\n`,
  );
  r = await openclaw(["plugins", "validate", "--root", bare, "--entry", "./index.js"], freshHome("bare"));
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /does not expose tool or feature authoring metadata/);
});

test("OpenClaw loads the plugin: plugins install --link, then plugins inspect --runtime", async () => {
  const env = freshHome("load");
  // --force: a local path is outside ClawHub's review, and a non-interactive
  // install must say it trusts it; --accept-capabilities: the same for the
  // capability consent prompt.
  let r = await openclaw(["plugins", "install", "--link", "--force", "--accept-capabilities", ROOT], env);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout + r.stderr, /Linked plugin path/);
  const config = JSON.parse(readFileSync(env.OPENCLAW_CONFIG_PATH, "utf8"));
  assert.deepEqual(config.plugins.load.paths, [ROOT]);
  assert.equal(config.plugins.entries["agent-secrets"].enabled, true);

  r = await openclaw(["plugins", "inspect", "agent-secrets", "--runtime", "--json"], env);
  assert.equal(r.code, 0, show(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.plugin.id, "agent-secrets");
  assert.equal(report.plugin.status, "loaded", show(r));
  assert.equal(report.plugin.imported, true);
  assert.equal(report.plugin.source, join(ROOT, "index.js"));
  assert.deepEqual(report.plugin.toolNames, TOOLS);
  assert.deepEqual(
    report.tools.filter((t) => t.optional).flatMap((t) => t.names),
    OPTIONAL,
  );
  assert.deepEqual(report.diagnostics ?? [], []);
});

test("plugins install PATH (a copy, as the README says) loads too, with its skill", async () => {
  const env = freshHome("copy");
  let r = await openclaw(["plugins", "install", "--force", "--accept-capabilities", ROOT], env);
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stdout + r.stderr, /failed during load/, show(r));
  const installed = join(env.OPENCLAW_STATE_DIR, "extensions", "agent-secrets");
  assert.ok(existsSync(join(installed, "skills", "secret-management", "SKILL.md")), "the skill was not copied");

  r = await openclaw(["plugins", "inspect", "agent-secrets", "--runtime", "--json"], env);
  assert.equal(r.code, 0, show(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.plugin.status, "loaded", show(r));
  assert.equal(report.plugin.source, join(installed, "index.js"));
  assert.deepEqual(report.plugin.toolNames, TOOLS);
});

// The whole path, from OpenClaw's side: a Gateway with the plugin linked runs
// its tools (POST /tools/invoke) against the real CLI and daemon. Opt-in: the
// Gateway takes tens of seconds to start on a small machine, and it tries the
// network (update check, model catalog), which is not there in CI.
const GATEWAY = process.env.OPENCLAW_GATEWAY_TEST === "1";
test(
  "a Gateway runs the tools: POST /tools/invoke (OPENCLAW_GATEWAY_TEST=1)",
  { skip: !GATEWAY && "set OPENCLAW_GATEWAY_TEST=1 (and SECRETS_BIN) to start a Gateway" },
  async () => {
    const { spawn, execFileSync } = await import("node:child_process");
    const { createServer } = await import("node:net");
    const bin = process.env.SECRETS_BIN || join(ROOT, "..", "..", "build", "secrets");
    const env = freshHome("gateway");
    const store = join(scratch, "gateway", "store");
    mkdirSync(store, { mode: 0o700 });
    Object.assign(env, {
      AGENT_SECRETS_HOME: store,
      OPENCLAW_NO_AUTO_UPDATE: "1",
      OPENCLAW_DISABLE_BONJOUR: "1",
      OPENCLAW_SKIP_CHANNELS: "1",
      OPENCLAW_SKIP_CRON: "1",
      OPENCLAW_SKIP_GMAIL_WATCHER: "1",
      OPENCLAW_SKIP_CANVAS_HOST: "1",
      OPENCLAW_SKIP_BROWSER_CONTROL_SERVER: "1",
    });
    delete env.AGENT_SECRETS_SOCKET;
    let r = await openclaw(["plugins", "install", "--link", "--force", "--accept-capabilities", ROOT], env);
    assert.equal(r.code, 0, show(r));
    const config = JSON.parse(readFileSync(env.OPENCLAW_CONFIG_PATH, "utf8"));
    config.plugins.entries["agent-secrets"].config = { cli_path: bin, client_id_prefix: "gw" };
    writeFileSync(env.OPENCLAW_CONFIG_PATH, JSON.stringify(config));

    execFileSync(bin, ["init"], { env, stdio: "ignore" });
    const daemon = spawn(bin, ["serve"], { env, stdio: "ignore" });
    const port = await new Promise((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const token = "agent-secrets-test-token";
    const gateway = spawn(
      HOST_NODE,
      [HOST_CLI, "gateway", "run", "--port", String(port), "--bind", "loopback", "--auth", "token", "--token", token, "--allow-unconfigured"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    gateway.stdout.on("data", (d) => (log += d));
    gateway.stderr.on("data", (d) => (log += d));
    const invoke = async (tool, args = {}) => {
      const res = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ tool, args }),
      });
      return { status: res.status, body: await res.json() };
    };
    try {
      const deadline = Date.now() + 180_000;
      for (;;) {
        assert.equal(gateway.exitCode, null, `the Gateway exited:\n${log}`);
        if (/\[gateway\] ready/.test(log)) {
          break;
        }
        assert.ok(Date.now() < deadline, `the Gateway did not start within 180 s:\n${log}`);
        await new Promise((res) => setTimeout(res, 500));
      }
      execFileSync(bin, ["add", "--", "gw_key"], { env, input: "gw value 'q' $(x)" });

      let out = await invoke("secrets_status");
      assert.equal(out.status, 200, JSON.stringify(out.body));
      assert.equal(out.body.result.details.running, true);

      out = await invoke("secrets_lease", { name: "gw_key", reveal: true, client_id: "t" });
      assert.equal(out.status, 200, JSON.stringify(out.body));
      assert.equal(out.body.result.content[0].text, "gw value 'q' $(x)");
      assert.equal(out.body.result.details.client_id, "gw-t");

      out = await invoke("secrets_revoke", { lease_id: out.body.result.details.lease_id });
      assert.equal(out.status, 200, JSON.stringify(out.body));

      // A refused call fails (the endpoint hides the message; the Gateway's log has it).
      out = await invoke("secrets_lease", { name: "--all" });
      assert.equal(out.body.ok, false);
      assert.match(log + readFileSync(join(scratch, "gateway", "openclaw.log"), "utf8"), /invalid secret name/);
    } finally {
      for (const child of [gateway, daemon]) {
        if (child.exitCode === null) {
          const done = new Promise((res) => child.once("exit", res));
          child.kill("SIGTERM");
          await done;
        }
      }
    }
  },
);
