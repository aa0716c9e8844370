// OpenClaw plugin for agent-secrets: the `secrets` CLI's commands as agent tools,
// authored with defineToolPlugin so that `openclaw plugins build` generates
// openclaw.plugin.json from this file and `openclaw plugins validate` checks it.
//
// Every call is execFile(cli_path, [argv...]): no shell, no string built from
// input. Positionals follow `--` and option values are glued with `=`, so a
// name such as "--all" or "; rm -rf ~" stays one literal argument. A secret's
// value travels on the child's stdin, never in argv.

import { execFile } from "node:child_process";
import { Type } from "typebox";
import { defineToolPlugin } from "openclaw/plugin-sdk/tool-plugin";

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
// envelope's message and fix when the command failed. `signal` (the tool
// call's AbortSignal) ends the child when OpenClaw cancels the call.
export function runCli(cliPath, args, { input, signal } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cliPath,
      args,
      { timeout: CALL_TIMEOUT_MS, maxBuffer: 8 << 20, windowsHide: true, signal },
      (error, stdout, stderr) => {
        if (error?.name === "AbortError") {
          reject(new Error(`secrets ${args[0]}: cancelled`));
          return;
        }
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

const cliOf = (config) => config?.cli_path || "secrets";

// The plugin config (plugins.entries.agent-secrets.config in openclaw.json).
// `openclaw plugins build` writes its JSON Schema into openclaw.plugin.json.
export const configSchema = Type.Object(
  {
    cli_path: Type.Optional(Type.String({ description: "Path of the secrets binary (default: secrets from PATH)" })),
    default_ttl: Type.Optional(
      Type.String({
        description: "Lease duration when a call gives none, e.g. 30m or 1h (default: the daemon's default_lease_ttl)",
      }),
    ),
    client_id_prefix: Type.Optional(
      Type.String({ description: "Prefix of the client_id recorded in the audit log (default: openclaw)" }),
    ),
  },
  { additionalProperties: false },
);

const leaseParameters = Type.Object(
  {
    name: Type.String({ description: "The secret's name" }),
    ttl: Type.Optional(Type.String({ description: "Lease duration, e.g. 30m or 1h" })),
    client_id: Type.Optional(Type.String({ description: "Who holds the lease (audited, after the prefix)" })),
    reveal: Type.Optional(Type.Boolean({ description: "Return the secret's value too (default false)" })),
  },
  { additionalProperties: false },
);

const LEASE_DESCRIPTION =
  "Take a time-bounded, audited lease on a secret. By default returns only the lease id and expiry; " +
  "set reveal: true only when the raw value itself is needed (never echo it or write it to a file).";

// secrets_lease is a factory tool: with reveal: true the model must see the raw
// value as the text while details keep the lease id (to revoke it), and a
// declarative execute() cannot return that shape (a string becomes both).
function createLeaseTool(config) {
  const cli = cliOf(config);
  const defaultTtl = config?.default_ttl || "";
  const prefix = config?.client_id_prefix || "openclaw";
  return {
    name: "secrets_lease",
    label: "Lease a secret",
    description: LEASE_DESCRIPTION,
    parameters: leaseParameters,
    async execute(_toolCallId, params, signal) {
      const name = requireString(params, "name");
      const ttl = optionalString(params, "ttl") ?? defaultTtl;
      const id = optionalString(params, "client_id");
      const args = ["lease", "--json", `--client-id=${id ? `${prefix}-${id}` : prefix}`];
      if (ttl) {
        args.push(`--ttl=${ttl}`);
      }
      args.push("--", name);
      const lease = (await runCli(cli, args, { signal })).result;
      const details = {
        lease_id: lease.lease_id,
        secret_name: lease.secret_name,
        client_id: lease.client_id,
        ttl: lease.ttl,
        expires_at: lease.expires_at,
      };
      if (params.reveal === true) {
        return { content: [{ type: "text", text: lease.value }], details: { ...details, value: lease.value } };
      }
      return { content: [{ type: "text", text: JSON.stringify(details, null, 2) }], details };
    },
  };
}

const plugin = defineToolPlugin({
  id: "agent-secrets",
  name: "agent-secrets",
  description: "Time-bounded leases on age-encrypted secrets, through the local `secrets` CLI and its daemon",
  configSchema,
  // The other tools return the CLI's `result`; defineToolPlugin shows it to
  // the model as JSON text and keeps it in the call's details.
  tools: (tool) => [
    tool({
      name: "secrets_list",
      label: "List secrets",
      description: "List the stored secrets: names, dates, rotation hooks and live lease counts. Never values.",
      parameters: Type.Object({}, { additionalProperties: false }),
      async execute(_params, config, { signal } = {}) {
        return (await runCli(cliOf(config), ["list"], { signal })).result;
      },
    }),
    tool({
      name: "secrets_status",
      label: "Secrets daemon status",
      description: "The agent-secrets daemon's state: secret count, active leases, heartbeat/killswitch state.",
      parameters: Type.Object({}, { additionalProperties: false }),
      async execute(_params, config, { signal } = {}) {
        return (await runCli(cliOf(config), ["status"], { signal })).result;
      },
    }),
    tool({
      name: "secrets_lease",
      label: "Lease a secret",
      description: LEASE_DESCRIPTION,
      parameters: leaseParameters,
      factory: ({ config }) => createLeaseTool(config),
    }),
    tool({
      name: "secrets_revoke",
      label: "Revoke a lease",
      description: "End one lease now, by its lease id.",
      parameters: Type.Object(
        { lease_id: Type.String({ description: "The lease id from secrets_lease" }) },
        { additionalProperties: false },
      ),
      async execute(params, config, { signal } = {}) {
        return (await runCli(cliOf(config), ["revoke", "--", requireString(params, "lease_id")], { signal })).result;
      },
    }),
    tool({
      name: "secrets_audit",
      label: "Audit log",
      description: "The last entries of the hash-chained audit log: who leased, revoked or rotated what, and when.",
      parameters: Type.Object(
        {
          tail: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 10000, description: "How many entries (default 50)" }),
          ),
        },
        { additionalProperties: false },
      ),
      async execute(params, config, { signal } = {}) {
        const tail = params?.tail ?? 50;
        if (!Number.isInteger(tail) || tail < 1 || tail > 10000) {
          throw new Error("tail must be an integer from 1 to 10000");
        }
        return (await runCli(cliOf(config), ["audit", `--tail=${tail}`], { signal })).result;
      },
    }),
    tool({
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
      optional: true,
      async execute(params, config, { signal } = {}) {
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
        return (await runCli(cliOf(config), args, { input: value, signal })).result;
      },
    }),
    tool({
      name: "secrets_killswitch",
      label: "Killswitch",
      description:
        "EMERGENCY: revoke every active lease now (secrets revoke --all). Requires confirm: true. Optional tool.",
      parameters: Type.Object(
        { confirm: Type.Boolean({ description: "Must be true" }) },
        { additionalProperties: false },
      ),
      optional: true,
      async execute(params, config, { signal } = {}) {
        if (params?.confirm !== true) {
          throw new Error("the killswitch revokes every lease: call it again with confirm: true");
        }
        return (await runCli(cliOf(config), ["revoke", "--all"], { signal })).result;
      },
    }),
  ],
});

export default plugin;

// The concrete tools OpenClaw registers for one plugin config: what
// register(api) hands to api.registerTool, with factories called as OpenClaw
// calls them. The tests run these against the real CLI.
export function createTools(config = {}) {
  const tools = [];
  plugin.register({
    pluginConfig: config,
    registerTool(tool) {
      const made = typeof tool === "function" ? tool({}) : tool;
      tools.push(...[made].flat().filter(Boolean));
    },
  });
  return tools;
}
