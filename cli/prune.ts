import { POLICY_CATALOG } from "../agents/index.js";
import { checkpointTablesSize, type CheckpointTablesSize } from "../checkpoints/retention.js";
import type { KeelConfig } from "../core/config.js";
import { activeRollout, describeSteps, stableRelease } from "../runtime/releases/rollouts.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { loadPolicy } from "../policy/file.js";
import type { RetentionPolicy } from "../policy/retention.js";
import { applyRetention } from "../runtime/retention.js";
import { printJson, withDatabase } from "./common.js";
import { ago, KEEL } from "./render.js";

/** `1.5 MiB`, `820 KiB`, `96 B`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** How the checkpoint tables stand, in one line. */
export function describeTables(size: CheckpointTablesSize): string {
  const rows = size.rows
    ? ` (${size.rows.checkpoints} checkpoint(s), ${size.rows.writes} pending write(s), ${size.rows.blobs} channel value(s))`
    : "";
  return `checkpoint tables: ${formatBytes(size.bytes)}${rows}`;
}

/** The policy's retention, in one line. */
export function describeRetention(policy: RetentionPolicy): string {
  const rule = (r: { keep_all_days?: number; then?: string }) =>
    [
      r.keep_all_days !== undefined ? `keep all ${r.keep_all_days} day(s)` : "",
      r.then ? `then ${r.then}` : "",
    ]
      .filter(Boolean)
      .join(", ");
  const workflows = Object.entries(policy.workflows).map(([name, r]) => `; ${name}: ${rule(r)}`);
  return `retention: ${rule(policy.checkpoints)}${workflows.join("")}`;
}

/**
 * `keel prune`: applies the policy's checkpoint retention to every finished thread that is due, now (workers do
 * it hourly in batches), or with `--dry-run` shows what it would remove.
 */
export function pruneCheckpointsCommand(
  config: KeelConfig,
  opts: { dryRun?: boolean; json?: boolean; limit: number },
): Promise<number> {
  return withDatabase(config, opts.json, async (db) => {
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG).retention;
    const report = await applyRetention(db.pool, policy, { dryRun: opts.dryRun, limit: opts.limit });
    const size = await checkpointTablesSize(db.pool, { count: true });
    if (opts.json) {
      printJson({ ...report, tables: size });
      return 0;
    }
    const verb = opts.dryRun ? "would remove" : "removed";
    const action = (then: "latest" | "delete") =>
      then === "latest"
        ? opts.dryRun
          ? "would keep only the latest checkpoint of"
          : "kept only the latest checkpoint of"
        : opts.dryRun
          ? "would delete"
          : "deleted";
    console.log(`keel: ${describeRetention(policy)}`);
    if (report.pruned.length === 0) console.log("keel: no finished thread is due for retention");
    for (const t of report.pruned) {
      console.log(
        `${action(t.then)} ${t.kind} ${t.thread_id} (${t.workflow}, ended ${t.ended_at}): ${t.removed.checkpoints} checkpoint(s), ${t.removed.writes} write(s), ${t.removed.blobs} value(s), ${formatBytes(t.removed.bytes)}`,
      );
    }
    if (report.pruned.length > 0)
      console.log(
        `keel: ${verb} ${report.removed.checkpoints} checkpoint(s), ${report.removed.writes} write(s) and ${report.removed.blobs} channel value(s), ${formatBytes(report.removed.bytes)}, from ${report.pruned.length} thread(s) (${report.threads.latest} kept at their latest, ${report.threads.delete} deleted)`,
      );
    if (report.skipped)
      console.log(`keel: ${report.skipped} thread(s) started again meanwhile and were left alone`);
    if (report.pruned.length === opts.limit)
      console.log(`keel: more may be due; run ${KEEL} prune again (or raise --limit)`);
    if (opts.dryRun) console.log("keel: dry run: nothing was changed");
    console.log(`keel: ${describeTables(size)}`);
    return 0;
  });
}

/** `keel status` without a task: the tasks by status, the checkpoint tables and the retention policy. */
export function overviewCommand(config: KeelConfig, opts: { json?: boolean }): Promise<number> {
  return withDatabase(config, opts.json, async (db) => {
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG).retention;
    const { rows } = await db.pool.query<{ status: string; n: number }>(
      "select status, count(*)::int as n from tasks where parent_id is null group by status order by status",
    );
    const tasks = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    const size = await checkpointTablesSize(db.pool, { count: true });
    const { rows: last } = await db.pool.query<{ at: Date | null; threads: number }>(
      "select max(applied_at) as at, count(*)::int as threads from checkpoint_retention",
    );
    const stable = await stableRelease(db.pool);
    const rollout = await activeRollout(db.pool);
    const releases = {
      stable: stable ? releaseLabel(stable) : null,
      rollout: rollout
        ? {
            id: rollout.id,
            status: rollout.status,
            candidate: releaseLabel(await getRelease(db.pool, rollout.candidate_id)),
            step: rollout.step + 1,
            of: rollout.steps.length,
            current: describeSteps([rollout.steps[rollout.step]!]),
          }
        : null,
    };
    if (opts.json) {
      printJson({
        requests: tasks,
        releases,
        checkpoint_tables: size,
        retention: { ...policy, applied: last[0] },
      });
      return 0;
    }
    const counts = Object.entries(tasks).map(([status, n]) => `${n} ${status}`);
    console.log(`requests: ${counts.length ? counts.join(", ") : "none"}`);
    const r = releases.rollout;
    console.log(
      `releases: stable ${releases.stable ?? "none (tasks run on their worker's configuration)"}${r ? `; rollout of ${r.candidate} ${r.status} at step ${r.step}/${r.of} (${r.current})` : "; no rollout in progress"}`,
    );
    console.log(describeTables(size));
    const applied = last[0]?.at
      ? `; applied to ${last[0].threads} thread(s) so far, last ${ago(last[0].at)}`
      : "";
    console.log(`${describeRetention(policy)}${applied}`);
    return 0;
  });
}
