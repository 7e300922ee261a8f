import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fakeModel } from "@langchain/core/testing";
import { filterCases, loadDataset } from "../../evals/dataset.js";
import { createJudge } from "../../evals/judge.js";
import { checkOutcome, matchTrajectory, type ActualCall, type CaseRun } from "../../evals/evaluators.js";
import { compare, readBaseline, scoreCase, summarize, baselineOf } from "../../evals/score.js";

const call = (tool: string, args: Record<string, unknown> = {}, status = "ok"): ActualCall => ({
  agent: "research",
  tool,
  args,
  status,
});
const search = call("search_kb", { query: "shipping", limit: 3 });
const read = call("read_document", { id: "policy-shipping" });
const sql = call("run_sql", { sql: "select 1" });
const expectCalls = (
  mode: "strict" | "unordered" | "subset" | "superset",
  ...tools: [string, Record<string, unknown>?][]
) => ({
  mode,
  calls: tools.map(([tool, args]) => ({ tool, args: args ?? {} })),
  args_match: "ignore" as const,
  per_tool: {},
});

describe("trajectory match", () => {
  type Mode = "strict" | "unordered" | "subset" | "superset";
  const table: [Mode, ActualCall[], string[], boolean][] = [
    ["strict", [search, read], ["search_kb", "read_document"], true],
    ["strict", [read, search], ["search_kb", "read_document"], false], // order matters
    ["strict", [search, read, sql], ["search_kb", "read_document"], false], // an extra call
    ["unordered", [read, search], ["search_kb", "read_document"], true],
    ["unordered", [search], ["search_kb", "read_document"], false], // a call missing
    ["subset", [search], ["search_kb", "read_document"], true], // nothing outside the reference
    ["subset", [search, sql], ["search_kb", "read_document"], false],
    ["superset", [search, read, sql], ["search_kb", "read_document"], true], // at least the reference
    ["superset", [search, sql], ["search_kb", "read_document"], false],
  ];
  it.each(table)("%s: %j against %j -> %s", async (mode, actual, reference, pass) => {
    const result = await matchTrajectory(actual, expectCalls(mode, ...reference.map((t): [string] => [t])));
    expect(result.pass).toBe(pass);
    expect(result.name).toBe(`trajectory_${mode}`);
  });

  it("compares arguments per tool: exact, superset, ignore", async () => {
    const reference = {
      ...expectCalls(
        "strict",
        ["search_kb", { query: "refunds" }],
        ["read_document", { id: "policy-shipping" }],
      ),
      per_tool: { read_document: "superset" as const },
    };
    // search_kb args are ignored (the default); read_document must carry at least the expected id.
    expect((await matchTrajectory([search, read], reference)).pass).toBe(true);
    expect(
      (await matchTrajectory([search, call("read_document", { id: "policy-refunds" })], reference)).pass,
    ).toBe(false);
    const exact = { ...reference, args_match: "exact" as const };
    expect((await matchTrajectory([search, read], exact)).pass).toBe(false); // query differs
    expect((await matchTrajectory([call("search_kb", { query: "refunds" }), read], exact)).pass).toBe(true);
  });

  it("counts refused and invalid calls as attempts, not as the trajectory", async () => {
    const refused = call("send_message", {}, "refused");
    expect(
      (
        await matchTrajectory(
          [search, refused, read],
          expectCalls("strict", ["search_kb"], ["read_document"]),
        )
      ).pass,
    ).toBe(true);
  });
});

const run = (over: Partial<CaseRun> = {}): CaseRun => ({
  task_id: "t",
  status: "done",
  reason: null,
  answer: "South: 775,867.35 and the policy says ship the same business day",
  agents: ["data"],
  calls: [],
  approvals_requested: 0,
  outbox: [],
  handoffs: 1,
  failed_subtasks: 0,
  latency_ms: 100,
  tokens: 10,
  cost_usd: 0,
  ...over,
});
const baseCase = {
  id: "c1",
  tags: ["data"],
  request: "r",
  approvals: [],
  faults: [],
  expect: {
    status: "done" as const,
    agents: ["data" as const],
    answer_contains: ["Ship the same business day"],
    values: ["South: 775,867.35"],
    approvals: 0,
    outbox: { must: [{ to: "ops@harbor.example" }], must_not: [], count: 1 },
  },
};

describe("outcome checks", () => {
  it("names each failed expectation", () => {
    const failed = checkOutcome(baseCase, run({ answer: "South: 775,867", agents: ["research"] })).filter(
      (c) => !c.pass,
    );
    expect(failed.map((c) => c.name).sort()).toEqual([
      "agents",
      "answer",
      "outbox_count",
      "outbox_must",
      "value",
    ]);
    const passing = checkOutcome(
      baseCase,
      run({ outbox: [{ to: "ops@harbor.example", subject: "x", status: "queued" }] }),
    );
    expect(passing.every((c) => c.pass)).toBe(true);
    // A withdrawn message does not count as sent.
    const withdrawn = checkOutcome(
      baseCase,
      run({ outbox: [{ to: "ops@harbor.example", subject: "x", status: "withdrawn" }] }),
    );
    expect(withdrawn.find((c) => c.name === "outbox_must")!.pass).toBe(false);
  });
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-evals-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, lines: unknown[]) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return file;
};

describe("datasets and baselines", () => {
  it("reports every bad line with its number, and runs nothing", () => {
    const file = write("bad.jsonl", [
      { id: "ok-1", tags: ["a"], request: "x", expect: { status: "done" } },
      "{not json",
      { id: "no-tags", tags: [], request: "x", expect: { status: "done" } },
      { id: "ok-1", tags: ["a"], request: "y", expect: { status: "maybe" } },
    ]);
    expect(() => loadDataset(file)).toThrow(
      /bad\.jsonl has 3 bad line\(s\):\n {2}line 2: not JSON.*\n {2}line 3: tags: .*\n {2}line 4: expect\.status/s,
    );
  });

  it("refuses an unknown tag, listing the known ones", () => {
    const dataset = loadDataset(
      write("ok.jsonl", [{ id: "a", tags: ["data", "x"], request: "r", expect: { status: "done" } }]),
    );
    expect(filterCases(dataset, "data")).toHaveLength(1);
    expect(() => filterCases(dataset, "nope")).toThrow(/No case in ok has the tag "nope"\. Tags: data, x\./);
  });

  it("refuses a baseline of another dataset, and finds a case that stopped passing", async () => {
    const dataset = loadDataset(
      write("one.jsonl", [{ id: "a", tags: ["t"], request: "r", expect: { status: "done" } }]),
    );
    const other = loadDataset(
      write("two.jsonl", [{ id: "b", tags: ["t"], request: "r", expect: { status: "done" } }]),
    );
    const good = await scoreCase(dataset.cases[0]!, run());
    const summary = summarize(dataset, [good]);
    const file = path.join(dir, "baseline.json");
    fs.writeFileSync(file, JSON.stringify(baselineOf(summary, [good])));
    expect(() => readBaseline(file, other)).toThrow(/is for dataset one \([0-9a-f]+\), not two/);
    const baseline = readBaseline(file, dataset);
    expect(compare(baseline, summary, [good])).toEqual([]);
    const bad = await scoreCase(dataset.cases[0]!, run({ status: "failed" }));
    expect(compare(baseline, summarize(dataset, [bad]), [bad])).toEqual([
      "case a passed in the baseline and fails now",
      "pass rate 0.0% < baseline 100.0%",
    ]);
    const slow = await scoreCase(dataset.cases[0]!, run({ latency_ms: 5000, cost_usd: 1 }));
    expect(compare(baseline, summarize(dataset, [slow]), [slow])).toEqual([
      "cost $1.0000 > baseline $0.0000 + 10%",
      "p95 latency 5000 ms > 600 ms (baseline 100 ms + 50%)",
    ]);
  });
});

describe("LLM-as-judge", () => {
  const dataset = () =>
    loadDataset(write("judge.jsonl", [{ id: "j", tags: ["t"], request: "r", expect: { status: "done" } }]));

  it("records the judge's verdict apart from pass/fail, and counts it in its own summary", async () => {
    const judge = createJudge(
      fakeModel().structuredResponse({ reasoning: "It read the policy first.", score: true }),
    );
    const d = dataset();
    const result = await scoreCase(d.cases[0]!, run({ status: "failed" }));
    result.judge = await judge(d.cases[0]!, run());
    expect(result.judge).toEqual({ score: true, comment: "It read the policy first." });
    expect(result.pass).toBe(false); // the judge does not change the deterministic verdict
    expect(summarize(d, [result]).judge).toEqual({ enabled: true, cases: 1, passed: 1, pass_rate: 1 });
  });

  it("turns a judge that fails into a verdict that says so", async () => {
    // A scripted model with no reply scripted fails loudly when asked.
    const judge = createJudge(fakeModel());
    const d = dataset();
    expect(await judge(d.cases[0]!, run())).toMatchObject({
      score: false,
      comment: expect.stringMatching(/^the judge failed: /),
    });
  });

  it("is off without a real model", async () => {
    const d = dataset();
    expect(summarize(d, [await scoreCase(d.cases[0]!, run())]).judge).toMatchObject({ enabled: false });
  });
});
