import type pg from "pg";
import { inTransaction } from "../../core/transaction.js";
import { computeSlo, type SloName, type SloReport, type SloResult } from "../../observability/slo.js";
import { RolloutAnalysis } from "../../policy/rollout.js";
import type { SloTargets } from "../../policy/slo-targets.js";
import { postRolloutWebhook } from "./notify.js";
import { abortRollout, activeRollout, promoteRollout, type RolloutRow } from "./rollouts.js";
import { getRelease, releaseLabel } from "./store.js";

/** One comparison of an analysis: what was measured on each side, the limit, and whether it held. */
export interface Check {
  name: SloName | "unreviewed_high_risk" | "guardrail_rate";
  passed: boolean;
  candidate: number | null;
  baseline: number | null;
  /** The target or threshold it was held to, in words. */
  limit: string;
}

export interface Verdict {
  rollout_id: string;
  step: number;
  outcome: "no_rollout" | "paused" | "inconclusive" | "waiting" | "passed" | "failed" | "rolled_back";
  /** Settled candidate and baseline tasks in the step's window. */
  sample: { candidate: number; baseline: number };
  checks: Check[];
  /** What was done and why, in one line: recorded as the event's reason. */
  reason: string;
  /** Whether the rollout's webhook was told (a rollback or the final promotion): sent, failed: why, or none. */
  notification?: string;
}

interface Extra {
  settled: number;
  unreviewed: number;
  guardrail_events: number;
}

/** High-risk calls decided without a person, and guardrail events, of one release's tasks in the window. */
async function extraCounts(db: pg.Pool, releaseId: string, since: Date): Promise<Extra> {
  const { rows } = await db.query<Extra>(
    `with roots as (
       select id, status from tasks where parent_id is null and release_id = $1 and created_at >= $2)
     select (select count(*)::int from roots where status in ('done', 'failed', 'waiting_for_approval')) as settled,
            (select count(*)::int from policy_decisions d where d.thread_id in (select id::text from roots)
               and d.decision in ('autonomous', 'logged') and d.inputs->>'risk' in ('high', 'critical')) as unreviewed,
            (select count(*)::int from guardrail_events g where g.thread_id in (select id::text from roots))
              as guardrail_events`,
    [releaseId, since],
  );
  return rows[0]!;
}

const value = (report: SloReport, name: SloName): SloResult => report.results.find((r) => r.name === name)!;
const pct = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(1)}%`);

/**
 * The checks of one step: the candidate's SLOs against their targets (a target the baseline also misses is not
 * held against the candidate) and against the baseline's with the thresholds, plus high-risk calls made without
 * a person and guardrail events.
 */
export function compare(
  candidate: SloReport & { extra: Extra },
  baseline: (SloReport & { extra: Extra }) | undefined,
  rules: RolloutAnalysis,
): Check[] {
  const checks: Check[] = [];
  for (const c of candidate.results) {
    const b = baseline ? value(baseline, c.name) : undefined;
    if (c.status === "breached" && b?.status !== "breached")
      checks.push({
        name: c.name,
        passed: false,
        candidate: c.value,
        baseline: b?.value ?? null,
        limit: `target ${c.direction === "above" ? ">=" : "<="} ${c.target}`,
      });
  }
  const against = (name: SloName, limit: string, fails: (cand: number, base: number) => boolean): void => {
    const c = value(candidate, name).value;
    const b = baseline ? value(baseline, name).value : null;
    if (c === null || b === null) return;
    checks.push({ name, passed: !fails(c, b), candidate: c, baseline: b, limit });
  };
  const below = (drop: number) => `at most ${pct(drop)} below the baseline`;
  const above = (rise: number) => `at most ${pct(rise)} above the baseline`;
  const times = (ratio: number) => `at most ${ratio}× the baseline`;
  const thresholds: [SloName, string, (c: number, b: number) => boolean][] = [
    ["task_success_rate", below(rules.max_success_rate_drop), (c, b) => b - c > rules.max_success_rate_drop],
    ["p95_time_to_completion", times(rules.max_latency_ratio), (c, b) => c > b * rules.max_latency_ratio],
    ["p95_time_to_first_token", times(rules.max_latency_ratio), (c, b) => c > b * rules.max_latency_ratio],
    [
      "tool_call_error_rate",
      above(rules.max_tool_error_rate_rise),
      (c, b) => c - b > rules.max_tool_error_rate_rise,
    ],
    [
      "human_escalation_rate",
      above(rules.max_escalation_rate_rise),
      (c, b) => c - b > rules.max_escalation_rate_rise,
    ],
    ["cost_per_successful_task", times(rules.max_cost_ratio), (c, b) => c > b * rules.max_cost_ratio],
  ];
  for (const [name, limit, fails] of thresholds) against(name, limit, fails);
  checks.push({
    name: "unreviewed_high_risk",
    passed: candidate.extra.unreviewed <= rules.max_unreviewed_high_risk,
    candidate: candidate.extra.unreviewed,
    baseline: baseline?.extra.unreviewed ?? null,
    limit: `at most ${rules.max_unreviewed_high_risk} high- or critical-risk calls without a person`,
  });
  const rate = (r: SloReport & { extra: Extra }) =>
    r.extra.settled ? r.extra.guardrail_events / r.extra.settled : null;
  const cg = rate(candidate);
  const bg = baseline ? rate(baseline) : null;
  if (cg !== null && bg !== null)
    checks.push({
      name: "guardrail_rate",
      passed: cg - bg <= rules.max_guardrail_rate_rise,
      candidate: cg,
      baseline: bg,
      limit: `at most ${rules.max_guardrail_rate_rise} more guardrail events per task than the baseline`,
    });
  return checks;
}

const describe = (c: Check) => `${c.name} ${fmt(c.candidate)} (baseline ${fmt(c.baseline)}; ${c.limit})`;
const fmt = (x: number | null) => (x === null ? "-" : Number.isInteger(x) ? String(x) : x.toFixed(3));

/**
 * Judges the step of the rollout in progress. Too few settled candidate tasks: inconclusive, it waits. A failed
 * check counts against the failure limit; past it, the rollout is rolled back (new tasks go to the baseline at
 * once) with the breached indicators named, and `notify` is called. A passing step whose window has run is
 * promoted to the next step (from the last: the candidate becomes stable).
 */
export async function analyzeRollout(
  pool: pg.Pool,
  targets: SloTargets,
  options: { now?: Date } = {},
): Promise<Verdict> {
  const rollout = await activeRollout(pool);
  const none = { sample: { candidate: 0, baseline: 0 }, checks: [] };
  if (!rollout)
    return { rollout_id: "", step: 0, outcome: "no_rollout", reason: "no rollout in progress", ...none };
  const base = { rollout_id: rollout.id, step: rollout.step };
  if (rollout.status === "paused")
    return { ...base, outcome: "paused", reason: "the rollout is paused", ...none };
  const rules = RolloutAnalysis.parse(rollout.analysis.rules ?? {});
  const webhook = typeof rollout.analysis.webhook_url === "string" ? rollout.analysis.webhook_url : undefined;
  const notify = async (text: string, verdict: Verdict): Promise<Verdict> => {
    if (!webhook) return { ...verdict, notification: "none" };
    try {
      await postRolloutWebhook(webhook, text, verdict);
      return { ...verdict, notification: "sent" };
    } catch (error) {
      // The decision stands; the verdict (and the worker's log) says the announcement did not go out.
      return { ...verdict, notification: `failed: ${(error as Error).message}` };
    }
  };
  const now = options.now ?? new Date();
  const since = rollout.step_started_at;
  const measure = async (releaseId: string) => {
    const [report, extra] = await Promise.all([
      computeSlo(pool, targets, { since, until: now, release: { id: releaseId, label: releaseId } }),
      extraCounts(pool, releaseId, since),
    ]);
    return { ...report, extra };
  };
  const candidate = await measure(rollout.candidate_id);
  const baseline = await measure(rollout.baseline_id);
  const sample = { candidate: candidate.extra.settled, baseline: baseline.extra.settled };
  if (sample.candidate < rules.min_sample)
    return {
      ...base,
      outcome: "inconclusive",
      sample,
      checks: [],
      reason: `inconclusive: ${sample.candidate} of ${rules.min_sample} candidate tasks settled in this step's window`,
    };
  const checks = compare(candidate, sample.baseline >= rules.min_sample ? baseline : undefined, rules);
  const failed = checks.filter((c) => !c.passed);
  const [candidateRelease, baselineRelease] = await Promise.all([
    getRelease(pool, rollout.candidate_id),
    getRelease(pool, rollout.baseline_id),
  ]);
  const names = `${releaseLabel(candidateRelease)} against ${releaseLabel(baselineRelease)}`;
  if (failed.length > 0) {
    const failures = Number(rollout.analysis.failures ?? 0) + 1;
    const reason = `${failed.map((c) => c.name).join(", ")} breached: ${failed.map(describe).join("; ")}`;
    if (failures > rules.failure_limit) {
      const { moved } = await abortRollout(pool, "analysis", `rolled back: ${reason}`, {
        checks,
        sample,
        breached: failed.map((c) => c.name),
      });
      const verdict: Verdict = {
        ...base,
        outcome: "rolled_back",
        sample,
        checks,
        reason,
      };
      return notify(
        `Keel rolled back ${names} at step ${rollout.step + 1}: ${reason}. New tasks run on ${releaseLabel(baselineRelease)}${moved ? `; ${moved} queued task(s) moved to it` : ""}.`,
        verdict,
      );
    }
    await recordAnalysis(
      pool,
      rollout,
      { failures },
      `failed (${failures} of ${rules.failure_limit} tolerated): ${reason}`,
      { checks, sample },
    );
    return { ...base, outcome: "failed", sample, checks, reason };
  }
  const elapsedMin = (now.getTime() - since.getTime()) / 60_000;
  if (elapsedMin < rules.window_minutes)
    return {
      ...base,
      outcome: "waiting",
      sample,
      checks,
      reason: `passing so far; the step's window ends in ${(rules.window_minutes - elapsedMin).toFixed(1)} min`,
    };
  const last = rollout.step + 1 >= rollout.steps.length;
  const reason = `analysis passed over ${sample.candidate} candidate and ${sample.baseline} baseline tasks (${checks.length} checks)`;
  await promoteRollout(pool, "analysis", { reason });
  const verdict: Verdict = { ...base, outcome: "passed", sample, checks, reason };
  return last ? notify(`Keel promoted ${names} to every task: ${reason}.`, verdict) : verdict;
}

/** Records a failed analysis the limit still tolerates, and counts it in the rollout's analysis state. */
async function recordAnalysis(
  pool: pg.Pool,
  rollout: RolloutRow,
  state: { failures: number },
  reason: string,
  details: Record<string, unknown>,
): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query("update rollouts set analysis = analysis || $2::jsonb where id = $1", [
      rollout.id,
      JSON.stringify(state),
    ]);
    await client.query(
      "insert into rollout_events (rollout_id, kind, step, actor, reason, details) values ($1, 'analysis', $2, 'analysis', $3, $4)",
      [rollout.id, rollout.step, reason, JSON.stringify(details)],
    );
  });
}
