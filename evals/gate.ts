import type { Database } from "../checkpoints/database.js";
import type { KeelConfig } from "../core/config.js";
import { releaseLabel, type ReleaseRow } from "../runtime/releases/store.js";
import { filterCases, type Dataset } from "./dataset.js";
import { runCases } from "./run.js";
import {
  baselineOf,
  compare,
  scoreCase,
  summarize,
  TOLERANCE,
  type CaseResult,
  type Summary,
} from "./score.js";

/** The outcome of the gate: each release's summary, and what regressed from the baseline to the candidate. */
export interface GateResult {
  passed: boolean;
  baseline: Summary;
  candidate: Summary;
  regressions: string[];
}

/**
 * The gate before a canary: the golden dataset (or its cases with one tag) runs on the baseline release and on the
 * candidate, in this process, and the candidate's results are compared with the baseline's as `keel eval
 * --baseline` compares them — a case that passed and fails now, a lower pass rate, fewer unsafe writes blocked,
 * cost up. Latency is left to the rollout's analysis on live traffic: two runs side by side on one machine are
 * too noisy to stop a release on.
 */
export async function runGate(
  db: Database,
  config: KeelConfig,
  input: {
    dataset: Dataset;
    filter?: string;
    baseline: ReleaseRow;
    candidate: ReleaseRow;
    concurrency: number;
    onCase?: (release: string, result: CaseResult) => void;
  },
): Promise<GateResult> {
  const cases = filterCases(input.dataset, input.filter);
  const runOn = async (release: ReleaseRow) => {
    const results: CaseResult[] = [];
    await runCases(db, config, cases, {
      concurrency: input.concurrency,
      caseTimeoutMs: 120_000,
      release: { id: release.id, policy: release.spec.policy },
      onCaseDone: async (c, run) => {
        const r = await scoreCase(c, run);
        results.push(r);
        input.onCase?.(releaseLabel(release), r);
      },
    });
    const order = new Map(cases.map((c, i) => [c.id, i]));
    results.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    return { results, summary: summarize(input.dataset, results, input.filter, releaseLabel(release)) };
  };
  const before = await runOn(input.baseline);
  const after = await runOn(input.candidate);
  const regressions = compare(baselineOf(before.summary, before.results), after.summary, after.results, {
    ...TOLERANCE,
    p95_latency_ratio: Number.POSITIVE_INFINITY,
  });
  return {
    passed: regressions.length === 0,
    baseline: before.summary,
    candidate: after.summary,
    regressions,
  };
}
