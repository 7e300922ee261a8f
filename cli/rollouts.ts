import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { loadPolicy } from "../policy/file.js";
import { targetsFor } from "../policy/slo-targets.js";
import { analyzeRollout } from "../runtime/releases/analysis.js";
import { InputError } from "../core/errors.js";
import {
  DEFAULT_PERCENTS,
  parseSteps,
  type AssignmentKey,
  type RolloutStep,
} from "../runtime/releases/assign.js";
import { filterCases, loadDataset } from "../evals/dataset.js";
import { runGate } from "../evals/gate.js";
import {
  abortRollout,
  baselineFor,
  recordGateStop,
  describeSteps,
  latestRollout,
  pauseRollout,
  promoteRollout,
  resumeRollout,
  rolloutEvents,
  stableRelease,
  startRollout,
  type RolloutRow,
} from "../runtime/releases/rollouts.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import type { Database } from "../checkpoints/database.js";
import { printJson, withDatabase } from "./common.js";
import { ago } from "./render.js";

/** A rollout as people and scripts read it: its releases by label, where it stands, and its events. */
async function view(db: Database, rollout: RolloutRow) {
  const [baseline, candidate] = await Promise.all([
    getRelease(db.pool, rollout.baseline_id),
    getRelease(db.pool, rollout.candidate_id),
  ]);
  const { rows } = await db.pool.query<{ release_id: string; n: number }>(
    `select release_id, count(*)::int as n from tasks
      where parent_id is null and created_at >= $1 and release_id = any($2) group by release_id`,
    [rollout.created_at, [rollout.baseline_id, rollout.candidate_id]],
  );
  const tasks = (id: string) => rows.find((r) => r.release_id === id)?.n ?? 0;
  const step = rollout.steps[rollout.step]!;
  return {
    id: rollout.id,
    status: rollout.status,
    baseline: releaseLabel(baseline),
    candidate: releaseLabel(candidate),
    assignment_key: rollout.assignment_key,
    steps: rollout.steps,
    step: rollout.step + 1,
    of: rollout.steps.length,
    current: describeSteps([step]),
    step_started_at: rollout.step_started_at,
    created_by: rollout.created_by,
    created_at: rollout.created_at,
    ended_at: rollout.ended_at,
    reason: rollout.reason,
    tasks: { baseline: tasks(rollout.baseline_id), candidate: tasks(rollout.candidate_id) },
    events: await rolloutEvents(db.pool, rollout.id),
  };
}

function print(v: Awaited<ReturnType<typeof view>>): void {
  console.log(
    `rollout ${v.id}: ${v.status} · ${v.candidate} against ${v.baseline} · by ${v.assignment_key} · step ${v.step}/${v.of} (${v.current}, since ${ago(v.step_started_at)})`,
  );
  console.log(`  steps: ${describeSteps(v.steps)}`);
  console.log(
    `  tasks since it started: ${v.candidate} ${v.tasks.candidate}, ${v.baseline} ${v.tasks.baseline}`,
  );
  for (const e of v.events)
    console.log(`  ${e.at.toISOString()}  ${e.kind.padEnd(9)} step ${e.step + 1}  ${e.actor}: ${e.reason}`);
}

/** `keel rollout start CANDIDATE`: the candidate gets the first step's share of new tasks. */
export function rolloutStartCommand(
  config: KeelConfig,
  candidateRef: string,
  opts: {
    baseline?: string;
    key: AssignmentKey;
    steps?: string;
    cohort?: string;
    reason?: string;
    json?: boolean;
    /** false with --no-gate. */
    gate: boolean;
    gateDataset: string;
    gateFilter?: string;
    gateConcurrency: number;
  },
) {
  return withDatabase(config, opts.json, async (db) => {
    let steps: RolloutStep[];
    try {
      steps = opts.steps
        ? parseSteps(opts.steps)
        : parseSteps([...(opts.cohort ? [`cohort:${opts.cohort}`] : []), ...DEFAULT_PERCENTS].join(";"));
    } catch (error) {
      throw new InputError(`--steps: ${(error as Error).message}.`, "invalid_argument");
    }
    const candidate = await getRelease(db.pool, candidateRef);
    const baseline = await baselineFor(
      db.pool,
      candidate,
      opts.baseline ? await getRelease(db.pool, opts.baseline) : undefined,
    );
    // The rules it is judged by are fixed when it starts: a later edit of the policy file does not move them.
    const { rollout: rules } = loadPolicy(config.policyFile, POLICY_CATALOG);
    let gate: { reason: string; details: Record<string, unknown> } | undefined;
    if (opts.gate) {
      const dataset = loadDataset(opts.gateDataset);
      filterCases(dataset, opts.gateFilter); // an unknown tag is bad input, before anything runs
      if (!opts.json)
        console.error(
          `keel rollout: the gate runs ${dataset.name}${opts.gateFilter ? ` (tag ${opts.gateFilter})` : ""} on ${releaseLabel(baseline)}, then on ${releaseLabel(candidate)}`,
        );
      const result = await runGate(db, config, {
        dataset,
        filter: opts.gateFilter,
        baseline,
        candidate,
        concurrency: opts.gateConcurrency,
        onCase: opts.json
          ? undefined
          : (release, r) => console.error(`  ${release}: ${r.pass ? "pass" : "FAIL"} ${r.id}`),
      });
      const rates = `${releaseLabel(candidate)} ${result.candidate.passed}/${result.candidate.cases}, ${releaseLabel(baseline)} ${result.baseline.passed}/${result.baseline.cases}`;
      const details = {
        dataset: dataset.name,
        filter: opts.gateFilter ?? null,
        baseline: {
          passed: result.baseline.passed,
          cases: result.baseline.cases,
          failing: result.baseline.failing,
        },
        candidate: {
          passed: result.candidate.passed,
          cases: result.candidate.cases,
          failing: result.candidate.failing,
        },
        regressions: result.regressions,
      };
      if (!result.passed) {
        const stopped = await recordGateStop(db.pool, {
          candidate,
          baseline,
          key: opts.key,
          steps,
          actor: config.user,
          reason: `gate failed (${rates}): ${result.regressions.join("; ")}`,
          details,
        });
        const v = await view(db, stopped);
        if (opts.json) printJson({ ...v, gate: details });
        else {
          print(v);
          console.error(
            `keel rollout: the gate stopped ${releaseLabel(candidate)} before any traffic: ${result.regressions.join("; ")}`,
          );
        }
        return 1;
      }
      gate = { reason: `gate passed (${rates}): no regression against the baseline`, details };
    }
    const rollout = await startRollout(db.pool, {
      candidate,
      baseline,
      key: opts.key,
      steps,
      actor: config.user,
      reason: opts.reason,
      analysis: { rules: rules.analysis, ...(rules.webhook_url ? { webhook_url: rules.webhook_url } : {}) },
      gate,
    });
    const v = await view(db, rollout);
    if (opts.json) printJson(v);
    else print(v);
    return 0;
  });
}

export function rolloutStatusCommand(config: KeelConfig, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const rollout = await latestRollout(db.pool);
    const stable = await stableRelease(db.pool);
    if (!rollout) {
      if (opts.json) printJson({ rollout: null, stable: stable ? releaseLabel(stable) : null });
      else
        console.log(
          `no rollout yet; stable release: ${stable ? releaseLabel(stable) : "none (tasks run on their worker's configuration)"}. ${config.command} rollout start CANDIDATE --baseline NAME starts one.`,
        );
      return 0;
    }
    const v = await view(db, rollout);
    if (opts.json) printJson({ ...v, stable: stable ? releaseLabel(stable) : null });
    else {
      print(v);
      console.log(`  stable release: ${stable ? releaseLabel(stable) : "none"}`);
    }
    return 0;
  });
}

/** `keel rollout analyze`: judges the step in progress now, as the workers do once a minute. */
export function rolloutAnalyzeCommand(config: KeelConfig, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG);
    const verdict = await analyzeRollout(db.pool, targetsFor(policy.slo, undefined));
    if (opts.json) {
      printJson(verdict);
      return verdict.outcome === "rolled_back" || verdict.outcome === "failed" ? 1 : 0;
    }
    console.log(`${verdict.outcome.replace("_", " ")}: ${verdict.reason}`);
    for (const c of verdict.checks)
      console.log(
        `  ${c.passed ? "ok  " : "FAIL"} ${c.name.padEnd(26)} candidate ${fmt(c.candidate)}  baseline ${fmt(c.baseline)}  (${c.limit})`,
      );
    if (verdict.notification && verdict.notification !== "none")
      console.log(`  webhook: ${verdict.notification}`);
    return verdict.outcome === "rolled_back" || verdict.outcome === "failed" ? 1 : 0;
  });
}

const fmt = (x: number | null) => (x === null ? "-" : Number.isInteger(x) ? String(x) : x.toFixed(3));

/** pause, resume, promote and abort: one change to the rollout in progress, recorded as an event. */
export function rolloutChangeCommand(
  config: KeelConfig,
  change: "pause" | "resume" | "promote" | "abort",
  opts: { reason?: string; full?: boolean; json?: boolean },
) {
  return withDatabase(config, opts.json, async (db) => {
    const actor = config.user;
    const rollout =
      change === "pause"
        ? await pauseRollout(db.pool, actor, opts.reason)
        : change === "resume"
          ? await resumeRollout(db.pool, actor, opts.reason)
          : change === "promote"
            ? await promoteRollout(db.pool, actor, { full: opts.full, reason: opts.reason })
            : (await abortRollout(db.pool, actor, opts.reason ?? "aborted by hand")).rollout;
    const v = await view(db, rollout);
    if (opts.json) printJson(v);
    else print(v);
    return 0;
  });
}
