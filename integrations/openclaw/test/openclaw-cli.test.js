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
