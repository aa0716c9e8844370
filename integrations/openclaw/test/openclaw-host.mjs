// The OpenClaw host the tests run against: Node 24 and the `openclaw` package
// that `make deps` installs in tests/openclaw (npm ci, from its lock file).
//
// The plugin imports `openclaw/plugin-sdk/tool-plugin` but does not install
// openclaw itself (a peer dependency): when OpenClaw loads the plugin it maps
// that import to its own copy. A host inside the plugin's node_modules would
// also break `openclaw plugins install --link` (OpenClaw then counts its
// bundled plugins as children of ours: "has conflicting child rows"). So the
// tests resolve `openclaw` and `openclaw/*` from the host directory instead,
// as OpenClaw does; importing this module installs that resolve hook.

import { existsSync } from "node:fs";
import * as nodeModule from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export const HOST_DIR = process.env.OPENCLAW_HOST_DIR || join(ROOT, "tests", "openclaw");
export const HOST_NODE = join(HOST_DIR, "node_modules", ".bin", "node");
export const HOST_CLI = join(HOST_DIR, "node_modules", "openclaw", "openclaw.mjs");

if (!existsSync(HOST_CLI) || !existsSync(HOST_NODE)) {
  throw new Error(`no OpenClaw host in ${HOST_DIR} (fix: make deps, or npm ci --ignore-scripts there)`);
}
if (typeof nodeModule.registerHooks !== "function") {
  throw new Error(`Node ${process.version} has no module.registerHooks (fix: run the tests with ${HOST_NODE})`);
}

const parentURL = pathToFileURL(join(HOST_DIR, "package.json")).href;
nodeModule.registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "openclaw" || specifier.startsWith("openclaw/")) {
      return nextResolve(specifier, { ...context, parentURL });
    }
    return nextResolve(specifier, context);
  },
});
