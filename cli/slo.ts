import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { InputError } from "../core/errors.js";
import { computeSlo, type SloReport, type SloResult } from "../observability/slo.js";
import { loadPolicy } from "../policy/file.js";
import { targetsFor } from "../policy/slo-targets.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { printJson, reportError, withDatabase } from "./common.js";

function format(value: number | null, unit: SloResult["unit"]): string {
  if (value === null) return "-";
  if (unit === "ratio") return `${(value * 100).toFixed(2)}%`;
  if (unit === "seconds") return `${value.toFixed(3)} s`;
  return value >= Number.MAX_VALUE ? "∞ (no successes)" : `$${value.toFixed(4)}`;
}

export function renderSlo(report: SloReport): string[] {
  const t = report.tasks;
  const lines = [
    `SLO scorecard · ${report.workflow ? `workflow ${report.workflow}` : "all workflows"}${report.release ? ` · release ${report.release}` : ""} · ${report.since} → ${report.until}`,
    `requests: ${t.total} (${t.done} done, ${t.failed} failed, ${t.waiting} waiting, ${t.cancelled} cancelled, ${t.unfinished} unfinished)`,
    "",
    `${"indicator".padEnd(27)}${"value".padStart(18)}  ${"target".padEnd(12)}${"n".padStart(6)}  status`,
  ];
  for (const r of report.results) {
    const target = `${r.direction === "above" ? ">=" : "<="} ${format(r.target, r.unit)}`;
    const mark = r.status === "breached" ? "✗ breached" : r.status === "met" ? "✓ met" : "· no data";
    lines.push(
      `${r.name.padEnd(27)}${format(r.value, r.unit).padStart(18)}  ${target.padEnd(12)}${String(r.sample_size).padStart(6)}  ${mark}`,
    );
  }
  lines.push("");
  lines.push(
    report.breached.length ? `breached: ${report.breached.join(", ")}` : "all targets met (or no data)",
  );
  return lines;
}

/** Computes the scorecard; exits 1 when a target is breached, so it can gate a deploy. */
export function sloCommand(
  config: KeelConfig,
  opts: { since: Date; until?: Date; workflow?: string; release?: string; json?: boolean },
): Promise<number> {
  let targets;
  try {
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG);
    if (opts.workflow && !(opts.workflow in policy.slo.workflows) && opts.workflow !== "default") {
      // An unknown workflow name is allowed (it may just have no overrides), but say which targets apply.
      console.error(
        `keel: workflow ${opts.workflow} has no targets of its own; the policy's slo.targets apply.`,
      );
    }
    targets = targetsFor(policy.slo, opts.workflow);
    if (opts.until && opts.until <= opts.since)
      throw new InputError("--until must be later than --since.", "invalid_argument");
  } catch (error) {
    return Promise.resolve(reportError(error, opts.json));
  }
  return withDatabase(config, opts.json, async (db) => {
    const release = opts.release ? await getRelease(db.pool, opts.release) : undefined;
    const report = await computeSlo(db.pool, targets, {
      ...opts,
      release: release ? { id: release.id, label: releaseLabel(release) } : undefined,
    });
    if (opts.json) printJson(report);
    else for (const l of renderSlo(report)) console.log(l);
    return report.breached.length ? 1 : 0;
  });
}
