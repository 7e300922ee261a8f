import fs from "node:fs";
import path from "node:path";
import cliProgress from "cli-progress";
import type { KeelConfig } from "../core/config.js";
import { InputError } from "../core/errors.js";
import { createModel, modelInfo } from "../models/index.js";
import { filterCases, loadDataset, type Dataset } from "../evals/dataset.js";
import { createJudge } from "../evals/judge.js";
import { uploadExperiment, type Upload } from "../evals/upload.js";
import { langsmithClient } from "../observability/langsmith.js";
import { writeReports } from "../evals/report.js";
import { runCases } from "../evals/run.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import {
  baselineOf,
  compare,
  readBaseline,
  scoreCase,
  summarize,
  TOLERANCE,
  type Baseline,
  type CaseResult,
} from "../evals/score.js";
import { printJson, reportError, withDatabase } from "./common.js";

export interface EvalOptions {
  dataset: string;
  filter?: string;
  concurrency: number;
  baseline?: string;
  saveBaseline?: string;
  out: string;
  json?: boolean;
  latencyTolerance?: number;
  /** Run the cases on this release (NAME, NAME@VERSION or id). */
  release?: string;
}

/**
 * Runs a golden dataset through the runtime, scores every case, writes the reports, and with --baseline exits 1
 * on a regression. Bad input (dataset, tag, baseline) is reported before anything runs.
 */
export function evalCommand(config: KeelConfig, opts: EvalOptions): Promise<number> {
  let dataset: Dataset;
  let cases;
  let baseline: Baseline | undefined;
  try {
    dataset = loadDataset(opts.dataset);
    cases = filterCases(dataset, opts.filter);
    if (opts.baseline) baseline = readBaseline(opts.baseline, dataset);
    if (opts.saveBaseline && opts.filter)
      throw new InputError("--save-baseline needs the whole dataset: drop --filter.", "invalid_argument");
  } catch (error) {
    return Promise.resolve(reportError(error, opts.json));
  }
  return withDatabase(config, opts.json, async (db) => {
    const release = opts.release ? await getRelease(db.pool, opts.release) : undefined;
    const tty = Boolean(process.stderr.isTTY) && !opts.json;
    const bar = tty
      ? new cliProgress.SingleBar(
          {
            format: "{bar} {value}/{total} cases | passed {passed} failed {failed} | ETA {eta}s",
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    bar?.start(cases.length, 0, { passed: 0, failed: 0 });
    // The LLM judge needs a real model; offline there is nothing to judge with.
    const judge =
      modelInfo(config).provider === "keel.offline" ? undefined : createJudge(createModel(config));
    const results: CaseResult[] = [];
    await runCases(db, config, cases, {
      concurrency: opts.concurrency,
      caseTimeoutMs: 120_000,
      release: release ? { id: release.id, policy: release.spec.policy } : undefined,
      onCaseDone: async (c, run) => {
        const r = await scoreCase(c, run);
        if (judge) r.judge = await judge(c, run);
        results.push(r);
        const passed = results.filter((x) => x.pass).length;
        if (bar) bar.increment({ passed, failed: results.length - passed });
        else if (!opts.json)
          console.error(`keel eval: ${r.pass ? "pass" : "FAIL"} ${r.id} (${results.length}/${cases.length})`);
      },
    });
    bar?.stop();
    const order = new Map(cases.map((c, i) => [c.id, i]));
    results.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    const summary = summarize(dataset, results, opts.filter, release ? releaseLabel(release) : undefined);
    const tolerance = {
      ...TOLERANCE,
      p95_latency_ratio: opts.latencyTolerance ?? TOLERANCE.p95_latency_ratio,
    };
    const regressions = baseline ? compare(baseline, summary, results, tolerance) : [];
    const files = writeReports(opts.out, summary, results, regressions);
    if (opts.saveBaseline) {
      fs.mkdirSync(path.dirname(path.resolve(opts.saveBaseline)), { recursive: true });
      fs.writeFileSync(opts.saveBaseline, `${JSON.stringify(baselineOf(summary, results), null, 2)}\n`);
    }
    let upload: Upload | { error: string } | undefined;
    const client = langsmithClient(config.observability.langsmith);
    if (client) {
      // The local reports are written already; an upload that fails is reported, not fatal.
      upload = await uploadExperiment(client, dataset, summary, results).catch((error: Error) => ({
        error: `LangSmith upload failed: ${error.message}`,
      }));
    }
    if (opts.json) {
      printJson({ ...summary, regressions, reports: files, ...(upload ? { langsmith: upload } : {}) });
    } else {
      console.log(
        `keel eval${summary.release ? ` on ${summary.release}` : ""}: ${summary.passed}/${summary.cases} passed (${(summary.pass_rate * 100).toFixed(1)}%) · p95 ${summary.latency_ms.p95} ms · $${summary.cost_usd.total.toFixed(4)}`,
      );
      for (const id of summary.failing) console.log(`  failing: ${id}`);
      if (baseline)
        console.log(
          regressions.length
            ? regressions.map((r) => `  regression: ${r}`).join("\n")
            : "  no regression against the baseline",
        );
      console.log(`reports: ${files.join(", ")}`);
      if (opts.saveBaseline) console.log(`baseline saved: ${opts.saveBaseline}`);
      if (upload && "error" in upload) console.error(`keel: ${upload.error}`);
      else if (upload)
        console.log(
          `langsmith: experiment ${upload.experiment} on dataset ${upload.dataset} (${upload.runs} runs)`,
        );
    }
    return regressions.length ? 1 : 0;
  });
}
