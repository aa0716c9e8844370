// OpenClaw plugin for agent-secrets: the `secrets` CLI's commands as agent tools.
//
// Every call is execFile(cli_path, [argv...]): no shell, no string built from
// input. Positionals follow `--` and option values are glued with `=`, so a
// name such as "--all" or "; rm -rf ~" stays one literal argument. A secret's
// value travels on the child's stdin, never in argv.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { Type } from "typebox";

const manifest = JSON.parse(readFileSync(new URL("./openclaw.plugin.json", import.meta.url), "utf8"));

export const TOOL_NAMES = [
  "secrets_list",
  "secrets_status",
  "secrets_lease",
  "secrets_revoke",
  "secrets_audit",
  "secrets_add",
  "secrets_killswitch",
];

const CALL_TIMEOUT_MS = 60_000;

// Runs the CLI and returns its JSON envelope; throws an Error carrying the
// envelope's message and fix when the command failed.
export function runCli(cliPath, args, { input } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cliPath,
      args,
      { timeout: CALL_TIMEOUT_MS, maxBuffer: 8 << 20, windowsHide: true },
      (error, stdout, stderr) => {
        let envelope;
        for (const text of [stdout, stderr]) {
          try {
            envelope = JSON.parse(text);
            break;
          } catch {
            // not this stream
          }
        }
        if (envelope && envelope.ok === true) {
          resolve(envelope);
          return;
        }
        if (envelope && envelope.error) {
          const err = new Error(
            `secrets ${args[0]}: ${envelope.error.message}` + (envelope.fix ? ` (fix: ${envelope.fix})` : ""),
          );
          err.code = envelope.error.code;
          err.envelope = envelope;
          reject(err);
          return;
        }
        const why = error ? (error.code === "ENOENT" ? `${cliPath} not found` : error.message) : "no JSON output";
        reject(new Error(`secrets ${args[0]}: ${why} (fix: install agent-secrets, or set cli_path in the plugin config)`));
      },
    );
    child.stdin.on("error", () => {}); // the child may exit before reading everything
    child.stdin.end(input ?? "");
  });
}

function text(value) {
  return { content: [{ type: "text", text: typeof value === "string" ? value : JSON.stringify(value, null, 2) }] };
}

function result(details, summary) {
  return { ...text(summary ?? details), details };
}

function requireString(params, key) {
  const v = params?.[key];
  if (typeof v !== "string" || v.length === 0) {
    throw new Error(`${key} must be a non-empty string`);
  }
  return v;
}

function optionalString(params, key) {
  const v = params?.[key];
  if (v === undefined || v === null || v === "") {
    return undefined;
  }
  if (typeof v !== "string") {
    throw new Error(`${key} must be a string`);
  }
  return v;
}

// Builds the tools for one plugin config; register() hands them to OpenClaw,
// and the tests call their execute functions directly.
export function createTools(config = {}) {
  const cli = config.cli_path || "secrets";
  const defaultTtl = config.default_ttl || "";
  const prefix = config.client_id_prefix || "openclaw";
  const clientId = (id) => (id ? `${prefix}-${id}` : prefix);

  return [
    {
      name: "secrets_list",
      label: "List secrets",
      description: "List the stored secrets: names, dates, rotation hooks and live lease counts. Never values.",
      parameters: Type.Object({}, { additionalProperties: false }),
      async execute() {
        const env = await runCli(cli, ["list"]);
        return result(env.result);
      },
    },
    {
      name: "secrets_status",
      label: "Secrets daemon status",
      description: "The agent-secrets daemon's state: secret count, active leases, heartbeat/killswitch state.",
      parameters: Type.Object({}, { additionalProperties: false }),
      async execute() {
        const env = await runCli(cli, ["status"]);
        return result(env.result);
      },
    },
    {
      name: "secrets_lease",
      label: "Lease a secret",
      description:
        "Take a time-bounded, audited lease on a secret. By default returns only the lease id and expiry; " +
        "set reveal: true only when the raw value itself is needed (never echo it or write it to a file).",
      parameters: Type.Object(
        {
          name: Type.String({ description: "The secret's name" }),
          ttl: Type.Optional(Type.String({ description: "Lease duration, e.g. 30m or 1h" })),
          client_id: Type.Optional(Type.String({ description: "Who holds the lease (audited, after the prefix)" })),
          reveal: Type.Optional(Type.Boolean({ description: "Return the secret's value too (default false)" })),
        },
        { additionalProperties: false },
      ),
      async execute(_toolCallId, params) {
        const name = requireString(params, "name");
        const ttl = optionalString(params, "ttl") ?? defaultTtl;
        const args = ["lease", "--json", `--client-id=${clientId(optionalString(params, "client_id"))}`];
        if (ttl) {
          args.push(`--ttl=${ttl}`);
        }
        args.push("--", name);
        const env = await runCli(cli, args);
        const lease = env.result;
        const details = {
          lease_id: lease.lease_id,
          secret_name: lease.secret_name,
          client_id: lease.client_id,
          ttl: lease.ttl,
          expires_at: lease.expires_at,
        };
        if (params.reveal === true) {
          return result({ ...details, value: lease.value }, lease.value);
        }
        return result(details);
      },
    },
    {
      name: "secrets_revoke",
      label: "Revoke a lease",
      description: "End one lease now, by its lease id.",
      parameters: Type.Object(
        { lease_id: Type.String({ description: "The lease id from secrets_lease" }) },
        { additionalProperties: false },
      ),
      async execute(_toolCallId, params) {
        const env = await runCli(cli, ["revoke", "--", requireString(params, "lease_id")]);
        return result(env.result);
      },
    },
    {
      name: "secrets_audit",
      label: "Audit log",
      description: "The last entries of the hash-chained audit log: who leased, revoked or rotated what, and when.",
      parameters: Type.Object(
        { tail: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: "How many entries (default 50)" })) },
        { additionalProperties: false },
      ),
      async execute(_toolCallId, params) {
        const tail = params?.tail ?? 50;
        if (!Number.isInteger(tail) || tail < 1 || tail > 10000) {
          throw new Error("tail must be an integer from 1 to 10000");
        }
        const env = await runCli(cli, ["audit", `--tail=${tail}`]);
        return result(env.result);
      },
    },
    {
      name: "secrets_add",
      label: "Add a secret",
      description:
        "Store a secret in the encrypted store (the value goes to the CLI on stdin). Optional tool: needs an allowlist.",
      // No rotation hook: a hook is a shell command the daemon runs, so only
      // the user sets one (secrets add --rotate-via, then secrets hook allow).
      parameters: Type.Object(
        {
          name: Type.String({ description: "The secret's name" }),
          value: Type.String({ description: "The secret's value" }),
          force: Type.Optional(Type.Boolean({ description: "Replace an existing secret" })),
        },
        { additionalProperties: false },
      ),
      async execute(_toolCallId, params) {
        for (const key of Object.keys(params ?? {})) {
          if (!["name", "value", "force"].includes(key)) {
            throw new Error(
              key === "rotate_via"
                ? "rotation hooks are set by the user, not by a tool (secrets add --rotate-via, then secrets hook allow)"
                : `unknown parameter ${key}`,
            );
          }
        }
        const name = requireString(params, "name");
        const value = requireString(params, "value");
        const args = ["add"];
        if (params.force === true) {
          args.push("--force");
        }
        args.push("--", name);
        const env = await runCli(cli, args, { input: value });
        return result(env.result);
      },
    },
    {
      name: "secrets_killswitch",
      label: "Killswitch",
      description:
        "EMERGENCY: revoke every active lease now (secrets revoke --all). Requires confirm: true. Optional tool.",
      parameters: Type.Object(
        { confirm: Type.Boolean({ description: "Must be true" }) },
        { additionalProperties: false },
      ),
      async execute(_toolCallId, params) {
        if (params?.confirm !== true) {
          throw new Error("the killswitch revokes every lease: call it again with confirm: true");
        }
        const env = await runCli(cli, ["revoke", "--all"]);
        return result(env.result);
      },
    },
  ];
}

const OPTIONAL = new Set(["secrets_add", "secrets_killswitch"]);

// The entry object definePluginEntry() would build; written out so that the
// plugin has no runtime import of the openclaw package.
export default {
  id: manifest.id,
  name: manifest.name,
  description: manifest.description,
  configSchema: manifest.configSchema,
  register(api) {
    for (const tool of createTools(api.pluginConfig ?? {})) {
      if (OPTIONAL.has(tool.name)) {
        api.registerTool(tool, { optional: true });
      } else {
        api.registerTool(tool);
      }
    }
  },
};
