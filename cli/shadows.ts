import type { KeelConfig } from "../core/config.js";
import { dualRunReport } from "../evals/dual-run.js";
import { startShadow, stopShadow } from "../runtime/releases/shadows.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { printJson, withDatabase } from "./common.js";

const pct = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(1)}%`);

/** `keel shadow start CANDIDATE --sample P`: sampled requests also run on the candidate, effects simulated. */
export function shadowStartCommand(
  config: KeelConfig,
  ref: string,
  opts: { sample: number; json?: boolean },
) {
  return withDatabase(config, opts.json, async (db) => {
    const candidate = await getRelease(db.pool, ref);
    const shadow = await startShadow(db.pool, { candidate, percent: opts.sample, actor: config.user });
    if (opts.json) printJson({ ...shadow, candidate: releaseLabel(candidate) });
    else
      console.log(
        `shadowing ${opts.sample}% of new requests with ${releaseLabel(candidate)} (effects simulated: nothing is sent, nobody is asked). Run its tasks with: ${config.command} worker --queue shadow`,
      );
    return 0;
  });
}

export function shadowStopCommand(config: KeelConfig, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const shadow = await stopShadow(db.pool);
    if (opts.json) printJson(shadow);
    else console.log(`shadow ${shadow.id} stopped; keel shadow report still shows its runs`);
    return 0;
  });
}

/** The dual-run report; exit 1 when the shadow did worse than the primary somewhere. */
export function shadowReportCommand(config: KeelConfig, opts: { since?: Date; json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const report = await dualRunReport(db.pool, { since: opts.since });
    const s = report.summary;
    if (opts.json) printJson(report);
    else {
      console.log(
        `dual run: ${s.pairs} shadowed request(s), ${s.settled} settled · same outcome ${pct(s.same_outcome_rate)} · trajectory match strict ${pct(s.trajectory_match_rate.strict)}, unordered ${pct(s.trajectory_match_rate.unordered)}, superset ${pct(s.trajectory_match_rate.superset)} · cost $${s.cost_usd.shadow.toFixed(4)} (primary $${s.cost_usd.primary.toFixed(4)}) · ${s.simulated_effects} simulated effect(s)`,
      );
      for (const e of report.entries) {
        console.log(`  "${e.request.slice(0, 70)}"`);
        console.log(
          `    primary ${e.primary.release ?? "?"}: ${e.primary.status}, tools ${e.primary.tools.map((t) => t.tool).join(" → ") || "none"}`,
        );
        console.log(
          `    shadow  ${e.shadow.release ?? "?"}: ${e.shadow.status}, tools ${e.shadow.tools.map((t) => t.tool).join(" → ") || "none"}`,
        );
        for (const x of e.shadow.simulated)
          console.log(`    would have: ${x.tool} ${JSON.stringify(x.args)} (${x.decision})`);
        for (const r of e.regressions) console.log(`    REGRESSION: ${r}`);
      }
      if (s.regressions.length === 0) console.log("no regression of the shadow against the primary");
    }
    return s.regressions.length ? 1 : 0;
  });
}
