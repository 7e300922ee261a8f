import path from "node:path";
import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { loadPolicy } from "../policy/file.js";
import { specFromConfig, specFromFile } from "../runtime/releases/spec.js";
import {
  createRelease,
  diffReleases,
  getRelease,
  listReleases,
  releaseAssistantId,
  releaseLabel,
  type ReleaseChange,
  type ReleaseRow,
} from "../runtime/releases/store.js";
import { printJson, withDatabase } from "./common.js";
import { ago } from "./render.js";

/** A release as scripts read it: everything but the spec, which `show` prints. */
const summary = (r: ReleaseRow) => ({
  id: r.id,
  name: r.name,
  version: r.version,
  label: releaseLabel(r),
  description: r.description,
  digest: r.digest,
  source: r.source,
  created_by: r.created_by,
  created_at: r.created_at,
  /** Its assistant on keel serve's Agent Server API: each version of the release is a version of it. */
  assistant_id: releaseAssistantId(r.name),
});

/** `keel release create NAME [--file F]`: the next version of NAME, from a release file or the configuration. */
export function releaseCreateCommand(
  config: KeelConfig,
  name: string,
  opts: { file?: string; description?: string; json?: boolean },
) {
  return withDatabase(config, opts.json, async (db) => {
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG);
    const fromFile = opts.file ? specFromFile(opts.file, config, policy, POLICY_CATALOG) : undefined;
    const { release, created } = await createRelease(db.pool, {
      name,
      spec: fromFile?.spec ?? specFromConfig(config, policy),
      description: opts.description ?? fromFile?.description,
      source: opts.file ? `file:${path.basename(opts.file)}` : "config",
      createdBy: config.user,
    });
    if (opts.json) printJson({ ...summary(release), created });
    else if (created)
      console.log(
        `release ${releaseLabel(release)} made from ${opts.file ?? "the current configuration"} (${release.id}); keel submit --release ${releaseLabel(release)} runs a request on it`,
      );
    else
      console.log(
        `release ${releaseLabel(release)} already holds exactly this bundle (digest ${release.digest.slice(0, 12)}); nothing new was made`,
      );
    return 0;
  });
}

export function releaseListCommand(config: KeelConfig, opts: { name?: string; json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const rows = await listReleases(db.pool, { name: opts.name });
    if (opts.json) {
      printJson(rows.map((r) => ({ ...summary(r), tasks: r.tasks })));
      return 0;
    }
    if (rows.length === 0)
      console.log(
        `no releases${opts.name ? ` named ${opts.name}` : ""}: ${config.command} release create NAME makes one from the current configuration`,
      );
    for (const r of rows)
      console.log(
        `${releaseLabel(r).padEnd(24)} ${r.spec.model.name.padEnd(14)} ${String(r.tasks).padStart(6)} tasks  created ${ago(r.created_at)} by ${r.created_by}${r.description ? ` · ${r.description}` : ""}`,
      );
    return 0;
  });
}

export function releaseShowCommand(config: KeelConfig, ref: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const r = await getRelease(db.pool, ref);
    if (opts.json) {
      printJson({ ...summary(r), spec: r.spec });
      return 0;
    }
    const { spec } = r;
    console.log(`release ${releaseLabel(r)}  ${r.id}`);
    if (r.description) console.log(`  ${r.description}`);
    console.log(`  made ${ago(r.created_at)} by ${r.created_by} from ${r.source}; digest ${r.digest}`);
    console.log(
      `  assistant ${releaseAssistantId(r.name)} on keel serve (runs on it run its version in force)`,
    );
    console.log(`  graph     ${spec.graph}`);
    console.log(
      `  model     ${spec.model.name}${spec.model.base_url ? ` at ${spec.model.base_url}` : ""}, max_tokens ${spec.model.max_tokens}, temperature ${spec.model.temperature}`,
    );
    console.log(
      `  policy    tiers ${JSON.stringify(spec.policy.tiers)}; ${Object.keys(spec.policy.tools).length} tool overrides, ${spec.policy.rules.length} argument rules; budgets ${JSON.stringify(spec.policy.budgets)}`,
    );
    console.log(`  limits    ${JSON.stringify(spec.limits)}`);
    for (const [role, prompt] of Object.entries(spec.prompts))
      console.log(`  prompt    ${role.padEnd(13)} ${prompt.length} chars: ${oneLine(prompt, 70)}`);
    console.log(`(--json prints the whole bundle)`);
    return 0;
  });
}

export function releaseDiffCommand(config: KeelConfig, from: string, to: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const a = await getRelease(db.pool, from);
    const b = await getRelease(db.pool, to);
    const changes = diffReleases(a, b);
    if (opts.json) {
      printJson({ from: summary(a), to: summary(b), changes });
      return 0;
    }
    if (changes.length === 0) {
      console.log(`${releaseLabel(a)} and ${releaseLabel(b)} hold the same bundle`);
      return 0;
    }
    console.log(`${releaseLabel(a)} -> ${releaseLabel(b)}: ${changes.length} change(s)`);
    for (const c of changes) console.log(`  ${describe(c)}`);
    return 0;
  });
}

function describe(c: ReleaseChange): string {
  if (c.kind === "added") return `+ ${c.path}: ${show(c.to)}`;
  if (c.kind === "removed") return `- ${c.path}: ${show(c.from)}`;
  return `~ ${c.path}: ${show(c.from)} -> ${show(c.to)}`;
}

const show = (value: unknown) => oneLine(JSON.stringify(value) ?? "undefined", 100);

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
