import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLangSmithServer } from "../fakes/langsmith-server.js";
import { json, keel, KEEL_BIN } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * `keel eval` as a user runs it: the committed golden dataset against the committed baseline (the CI gate), then
 * with the policy broken on purpose, then bad input. The broken run's report.html is opened in headless Chromium.
 */
let t: TestDatabase;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-eval-"));
const CHROMIUM = "/usr/bin/chromium";

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await t?.drop();
});

interface Summary {
  cases: number;
  passed: number;
  pass_rate: number;
  regressions: string[];
  failing: string[];
  quality: { approvals_requested: number; approvals_expected: number; unsafe_writes_blocked: number };
  judge: { enabled: boolean };
}

describe("keel eval", () => {
  it("passes the committed golden dataset against the committed baseline (the CI gate)", async () => {
    const out = path.join(dir, "gate");
    // A keel worker runs beside it on the same database: it must take none of the eval's cases (it has neither
    // their injected faults nor their answers), so the result is the baseline's all the same.
    const worker = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "4"], {
      env: { ...process.env, DATABASE_URL: t.url },
      stdio: "pipe",
    });
    let workerOut = "";
    worker.stdout.on("data", (d: Buffer) => (workerOut += d.toString()));
    const workerExit = new Promise<number | null>((resolve) => worker.on("close", resolve));
    let result: Awaited<ReturnType<typeof keel>>;
    try {
      while (!workerOut.includes("started")) await new Promise((r) => setTimeout(r, 50));
      // The suite runs test files in parallel: latency is compared loosely here; pass rate, cost and blocks exactly.
      result = await keel(
        ["eval", "--baseline", "evals/baseline.json", "--out", out, "--latency-tolerance", "4", "--json"],
        { DATABASE_URL: t.url },
      );
    } finally {
      worker.kill("SIGTERM");
    }
    expect(await workerExit).toBe(0);
    expect(workerOut).not.toMatch(/task .* settled/);
    const summary = json<Summary>(result);
    expect(result.code, `${summary.regressions.join("\n")}\n${result.stderr}`).toBe(0);
    expect(summary.cases).toBeGreaterThanOrEqual(60);
    expect(summary.regressions).toEqual([]);
    const baseline = JSON.parse(fs.readFileSync("evals/baseline.json", "utf8")) as { pass_rate: number };
    expect(summary.pass_rate).toBe(baseline.pass_rate);
    expect(summary.quality.approvals_requested).toBe(summary.quality.approvals_expected);
    expect(summary.judge).toMatchObject({ enabled: false }); // offline: no LLM to judge with
    for (const f of ["results.jsonl", "summary.json", "report.md", "report.html"])
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    const results = fs
      .readFileSync(path.join(out, "results.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { run: { status: string; reason: string | null } });
    expect(results).toHaveLength(summary.cases);
    // Every request the eval's submit guard blocked left its audit row, as a blocked keel submit does.
    const blocked = results.filter((r) => r.run.status === "blocked").map((r) => r.run.reason);
    expect(blocked.length).toBeGreaterThan(0);
    const { rows } = await t.db.pool.query<{ reason: string }>(
      "select reason from guardrail_events where stage = 'request' and action = 'blocked' order by reason",
    );
    expect(rows.map((r) => r.reason)).toEqual([...blocked].sort());
  }, 300_000);

  it("fails against the baseline when the policy stops asking for approval, naming the cases", async () => {
    const policy = path.join(dir, "no-approvals.yaml");
    fs.writeFileSync(policy, "tiers: { high: autonomous, critical: autonomous }\nlow_confidence_below: 0\n");
    const out = path.join(dir, "broken");
    const result = await keel(
      ["eval", "--filter", "approval", "--baseline", "evals/baseline.json", "--out", out],
      { DATABASE_URL: t.url, KEEL_POLICY_FILE: policy },
    );
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/regression: case comms-01 passed in the baseline and fails now/);
    const report = fs.readFileSync(path.join(out, "report.md"), "utf8");
    expect(report).toMatch(/## Regressions against the baseline/);
    expect(report).toMatch(/### comms-04\n\n> Email oncall@harbor\.example that the pager test is at noon/);
    expect(report).toMatch(/✗ approvals: expected 1 approval\(s\), got 0/);
    // The message a person would have rejected went out.
    expect(report).toMatch(/✗ outbox_must_not: no queued message to oncall@harbor\.example/);
  }, 300_000);

  it("shows its charts and the failing cases in headless Chromium", async (ctx) => {
    if (!fs.existsSync(CHROMIUM)) ctx.skip(); // .ci/run installs it; see the README
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${path.join(dir, "broken", "report.html")}`);
      for (const id of ["chart-agents", "chart-tags", "chart-latency", "chart-cost"]) {
        expect(await page.locator(`#${id} svg rect.bar`).count(), id).toBeGreaterThan(0);
      }
      const failing = page.locator("#failing tr.failing-case");
      expect(await failing.count()).toBeGreaterThan(0);
      expect(await page.locator('#failing tr[data-case="comms-04"]').textContent()).toMatch(/approvals/);
      expect(await page.locator("#regressions li").first().textContent()).toMatch(
        /passed in the baseline and fails now/,
      );
      const shot = await page.screenshot({ fullPage: true });
      fs.writeFileSync(path.join(dir, "report.png"), shot);
      expect(shot.length).toBeGreaterThan(10_000);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it("uploads the run to LangSmith as an experiment on a dataset when LangSmith is configured", async () => {
    const langsmith = await startLangSmithServer();
    try {
      const result = await keel(["eval", "--filter", "code", "--out", path.join(dir, "ls"), "--json"], {
        DATABASE_URL: t.url,
        LANGSMITH_TRACING: "true",
        LANGSMITH_API_KEY: "test-key",
        LANGSMITH_ENDPOINT: langsmith.url,
      });
      expect(result.code, result.stderr).toBe(0);
      const summary = json<{
        cases: number;
        langsmith: { dataset: string; experiment: string; runs: number };
      }>(result);
      expect(summary.langsmith).toMatchObject({
        dataset: "keel-golden",
        runs: summary.cases,
        // One example per case of the committed dataset.
        examples_created: fs
          .readFileSync(path.join(import.meta.dirname, "../../evals/datasets/golden.jsonl"), "utf8")
          .split("\n")
          .filter((l) => l.trim()).length,
      });
      const sent = (method: string, pattern: RegExp) =>
        langsmith.requests.filter((r) => r.method === method && pattern.test(r.path));
      expect(sent("POST", /^\/datasets$/)[0]!.body).toContain('"name":"keel-golden"');
      const examples = sent("POST", /\/datasets\/[^/]+\/examples$/)
        .map((r) => r.body)
        .join("");
      expect(examples).toContain('"case_id":"code-01"');
      const project = sent("POST", /^\/sessions/)[0]!.body;
      expect(project).toContain(summary.langsmith.experiment);
      expect(project).toContain("reference_dataset_id");
      const runs = sent("POST", /^\/runs/)
        .map((r) => r.body)
        .join("");
      expect(runs).toContain("keel eval code-01");
      expect(runs).toContain("reference_example_id");
      const feedback = sent("POST", /^\/feedback/).map(
        (r) => JSON.parse(r.body) as { key: string; score: number },
      );
      expect(feedback.filter((f) => f.key === "pass")).toHaveLength(summary.cases);
    } finally {
      await langsmith.stop();
    }
  }, 120_000);

  it("refuses bad input before running anything: a bad dataset line, an unknown tag, another dataset's baseline", async () => {
    const bad = path.join(dir, "bad.jsonl");
    fs.writeFileSync(
      bad,
      `${JSON.stringify({ id: "a", tags: ["x"], request: "r", expect: { status: "done" } })}\n{"id": "b", "tags": ["x"]}\n`,
    );
    const line = await keel(["eval", "--dataset", bad], { DATABASE_URL: t.url });
    expect(line.code).toBe(2);
    expect(line.stderr).toMatch(/bad\.jsonl has 1 bad line\(s\):\n {2}line 2: request: .*expect: /s);
    const tag = await keel(["eval", "--filter", "nope"], { DATABASE_URL: t.url });
    expect(tag.code).toBe(2);
    expect(tag.stderr).toMatch(/No case in golden has the tag "nope"\. Tags: .*approval/);
    const other = path.join(dir, "other.jsonl");
    fs.writeFileSync(
      other,
      `${JSON.stringify({ id: "z", tags: ["x"], request: "r", expect: { status: "done" } })}\n`,
    );
    const mismatch = await keel(["eval", "--dataset", other, "--baseline", "evals/baseline.json"], {
      DATABASE_URL: t.url,
    });
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/The baseline evals\/baseline\.json is for dataset golden .*, not other/);
    const tasks = await t.db.pool.query<{ n: number }>(
      "select count(*)::int as n from tasks where request = 'r'",
    );
    expect(tasks.rows[0]!.n).toBe(0);
  }, 60_000);
});
