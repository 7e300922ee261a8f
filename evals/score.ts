import fs from "node:fs";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import type { Dataset, EvalCase } from "./dataset.js";
import type { JudgeVerdict } from "./judge.js";
import {
  checkOutcome,
  matchTrajectory,
  qualityOf,
  trajectoryDiff,
  type CaseRun,
  type Check,
} from "./evaluators.js";

/** One case's verdict with everything the report shows. */
export interface CaseResult {
  id: string;
  tags: string[];
  agents: string[];
  request: string;
  pass: boolean;
  checks: Check[];
  quality: ReturnType<typeof qualityOf>;
  diff: ReturnType<typeof trajectoryDiff>;
  run: CaseRun;
  /** The optional LLM judge's verdict: reported on its own, never part of `pass`. */
  judge?: JudgeVerdict;
}

export async function scoreCase(c: EvalCase, run: CaseRun): Promise<CaseResult> {
  const checks = checkOutcome(c, run);
  if (c.expect.trajectory) checks.push(await matchTrajectory(run.calls, c.expect.trajectory));
  return {
    id: c.id,
    tags: c.tags,
    agents: c.expect.agents ?? [],
    request: c.request,
    pass: checks.every((x) => x.pass),
    checks,
    quality: qualityOf(c, run),
    diff: trajectoryDiff(run.calls, c.expect.trajectory),
    run,
  };
}

const rate = (pass: number, total: number) => (total ? pass / total : 0);
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0;
}

function groupRate(results: CaseResult[], keys: (r: CaseResult) => string[]) {
  const groups = new Map<string, { pass: number; total: number }>();
  for (const r of results)
    for (const k of keys(r)) {
      const g = groups.get(k) ?? { pass: 0, total: 0 };
      g.total++;
      if (r.pass) g.pass++;
      groups.set(k, g);
    }
  return Object.fromEntries(
    [...groups.entries()].sort().map(([k, g]) => [k, { ...g, pass_rate: rate(g.pass, g.total) }]),
  );
}

export function summarize(dataset: Dataset, results: CaseResult[], filter?: string, release?: string) {
  const sum = (f: (r: CaseResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const calls = sum((r) => r.quality.tool_calls);
  const handoffs = sum((r) => r.quality.handoffs);
  const latencies = results.map((r) => r.run.latency_ms);
  return {
    dataset: dataset.name,
    fingerprint: dataset.fingerprint,
    filter: filter ?? null,
    /** The release the cases ran on (`name@version`), when one was named. */
    release: release ?? null,
    cases: results.length,
    passed: results.filter((r) => r.pass).length,
    pass_rate: rate(results.filter((r) => r.pass).length, results.length),
    by_agent: groupRate(results, (r) => (r.agents.length ? [...new Set(r.agents)] : ["(no agent)"])),
    by_tag: groupRate(results, (r) => r.tags),
    latency_ms: {
      p50: percentile(latencies, 0.5),
      p95: percentile(latencies, 0.95),
      max: Math.max(0, ...latencies),
    },
    cost_usd: {
      total: sum((r) => r.run.cost_usd),
      per_case: rate(
        sum((r) => r.run.cost_usd),
        results.length,
      ),
    },
    tokens: sum((r) => r.run.tokens),
    quality: {
      unnecessary_tool_calls_per_run: rate(
        sum((r) => r.quality.unnecessary_tool_calls),
        results.length,
      ),
      invalid_argument_rate: rate(
        sum((r) => r.quality.invalid_arguments),
        calls,
      ),
      unsafe_writes_blocked: sum((r) => r.quality.unsafe_writes_blocked),
      handoff_failure_rate: rate(
        sum((r) => r.quality.failed_handoffs),
        handoffs,
      ),
      approvals_requested: sum((r) => r.quality.approvals_requested),
      approvals_expected: sum((r) => r.quality.approvals_expected),
    },
    failing: results.filter((r) => !r.pass).map((r) => r.id),
    judge: judgeSummary(results),
  };
}

function judgeSummary(results: CaseResult[]) {
  const judged = results.filter((r) => r.judge);
  if (judged.length === 0)
    return { enabled: false as const, note: "no real model configured: the LLM judge runs only with one" };
  const passed = judged.filter((r) => r.judge!.score).length;
  return { enabled: true as const, cases: judged.length, passed, pass_rate: rate(passed, judged.length) };
}
export type Summary = ReturnType<typeof summarize>;

/** What a baseline keeps: enough to say what got worse, and for which dataset. */
export const Baseline = z.object({
  dataset: z.string(),
  fingerprint: z.string(),
  pass_rate: z.number(),
  cases: z.record(z.string(), z.boolean()),
  unsafe_writes_blocked: z.number(),
  cost_usd_total: z.number(),
  p95_latency_ms: z.number(),
});
export type Baseline = z.infer<typeof Baseline>;

export function baselineOf(summary: Summary, results: CaseResult[]): Baseline {
  return {
    dataset: summary.dataset,
    fingerprint: summary.fingerprint,
    pass_rate: summary.pass_rate,
    cases: Object.fromEntries(results.map((r) => [r.id, r.pass])),
    unsafe_writes_blocked: summary.quality.unsafe_writes_blocked,
    cost_usd_total: summary.cost_usd.total,
    p95_latency_ms: summary.latency_ms.p95,
  };
}

export function readBaseline(path: string, dataset: Dataset): Baseline {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(path, "utf8"));
  } catch (error) {
    throw new InputError(
      `Cannot read the baseline ${path}: ${(error as Error).message}. Write one with --save-baseline.`,
    );
  }
  const parsed = Baseline.safeParse(raw);
  if (!parsed.success)
    throw new InputError(`${path} is not a Keel eval baseline. Write one with --save-baseline.`);
  if (parsed.data.dataset !== dataset.name || parsed.data.fingerprint !== dataset.fingerprint) {
    throw new InputError(
      `The baseline ${path} is for dataset ${parsed.data.dataset} (${parsed.data.fingerprint}), not ${dataset.name} (${dataset.fingerprint}): its cases differ. Compare against a baseline of this dataset, or save a new one with --save-baseline.`,
    );
  }
  return parsed.data;
}

/** How much worse is still not a regression. */
export const TOLERANCE = { pass_rate: 0, cost_ratio: 0.1, p95_latency_ratio: 0.5, p95_latency_floor_ms: 500 };

/**
 * Regressions against a baseline: a case that passed and fails now (named), a lower pass rate, fewer unsafe
 * writes blocked, cost or p95 latency up beyond the tolerance. Only the cases run now are compared.
 */
export function compare(
  baseline: Baseline,
  summary: Summary,
  results: CaseResult[],
  tolerance: typeof TOLERANCE = TOLERANCE,
): string[] {
  const problems: string[] = [];
  const ran = results.filter((r) => r.id in baseline.cases);
  for (const r of ran)
    if (baseline.cases[r.id] && !r.pass) problems.push(`case ${r.id} passed in the baseline and fails now`);
  const before = rate(ran.filter((r) => baseline.cases[r.id]).length, ran.length);
  const now = rate(ran.filter((r) => r.pass).length, ran.length);
  if (now < before - tolerance.pass_rate)
    problems.push(`pass rate ${(now * 100).toFixed(1)}% < baseline ${(before * 100).toFixed(1)}%`);
  if (ran.length === Object.keys(baseline.cases).length) {
    if (summary.quality.unsafe_writes_blocked < baseline.unsafe_writes_blocked)
      problems.push(
        `unsafe writes blocked ${summary.quality.unsafe_writes_blocked} < baseline ${baseline.unsafe_writes_blocked}`,
      );
    if (summary.cost_usd.total > baseline.cost_usd_total * (1 + tolerance.cost_ratio) + 1e-9)
      problems.push(
        `cost $${summary.cost_usd.total.toFixed(4)} > baseline $${baseline.cost_usd_total.toFixed(4)} + ${tolerance.cost_ratio * 100}%`,
      );
    const limit = Math.max(
      baseline.p95_latency_ms * (1 + tolerance.p95_latency_ratio),
      baseline.p95_latency_ms + tolerance.p95_latency_floor_ms,
    );
    if (summary.latency_ms.p95 > limit)
      problems.push(
        `p95 latency ${summary.latency_ms.p95} ms > ${Math.round(limit)} ms (baseline ${baseline.p95_latency_ms} ms + ${tolerance.p95_latency_ratio * 100}%)`,
      );
  }
  return problems;
}
