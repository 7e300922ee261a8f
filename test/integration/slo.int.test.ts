import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeSlo } from "../../observability/slo.js";
import { DEFAULT_SLO_TARGETS } from "../../policy/slo-targets.js";
import { prepareQueue } from "../../runtime/queue.js";
import { json, keel } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * A seeded set of requests with known outcomes and timings, two hours ago (all inside a 24 h window), plus one
 * three days old (outside it). Every expected number below is worked out by hand from these rows.
 */
let t: TestDatabase;
const base = Date.now() - 2 * 3600_000;
const at = (seconds: number) => new Date(base + seconds * 1000);

interface Seed {
  status: string;
  created: number;
  finished?: number;
  workflow?: string;
  /** Seconds after creation at which the first model call started, and ms to its first output. */
  firstCall?: [number, number];
  tools?: string[];
  cost?: number;
  approval?: "approved" | "pending";
  /** [start, end] of a wait for approval, seconds from base. */
  wait?: [number, number];
}

const SEEDS: Record<string, Seed> = {
  // 10 s, first output at 1.0 s, 4 good tool calls, $0.10.
  A: {
    status: "done",
    created: 0,
    finished: 10,
    firstCall: [0.5, 500],
    tools: ["ok", "ok", "ok", "ok"],
    cost: 0.1,
  },
  // 20 s of which 10 s waiting for a person: completion 10 s; first output 1.5 s; one tool error; $0.20.
  B: {
    status: "done",
    created: 60,
    finished: 80,
    firstCall: [1, 500],
    tools: ["ok", "ok", "ok", "error"],
    cost: 0.2,
    approval: "approved",
    wait: [62, 72],
  },
  // Failed; first output 3.0 s; an invalid call (an error) and a rejection (not an error); $0.30.
  C: {
    status: "failed",
    created: 120,
    finished: 125,
    firstCall: [2, 1000],
    tools: ["invalid_arguments", "rejected"],
    cost: 0.3,
  },
  // 40 s, first output 0.8 s.
  D: { status: "done", created: 180, finished: 220, firstCall: [0.3, 500], cost: 0 },
  // Cancelled: not counted in success, completion or cost.
  E: { status: "cancelled", created: 240, finished: 241, cost: 5 },
  // Another workflow: 5 s, first output 0.2 s, one good tool call.
  F: {
    status: "done",
    created: 300,
    finished: 305,
    workflow: "nightly",
    firstCall: [0.1, 100],
    tools: ["ok"],
    cost: 0,
  },
  // Waiting for a person; first output 0.3 s.
  H: { status: "waiting_for_approval", created: 360, firstCall: [0.1, 200], approval: "pending" },
  // Three days old: outside the window.
  G: { status: "failed", created: -3 * 86400, finished: -3 * 86400 + 5, firstCall: [0.1, 100], cost: 9 },
};

async function seed(name: string, s: Seed) {
  const id = randomUUID();
  const q = (sql: string, params: unknown[]) => t.db.pool.query(sql, params);
  await q(
    `insert into tasks (id, root_id, request, status, attempts, created_at, updated_at, finished_at, workflow)
     values ($1, $1, $2, $3, 1, $4, $4, $5, $6)`,
    [
      id,
      `seeded request ${name}`,
      s.status,
      at(s.created),
      s.finished === undefined ? null : at(s.finished),
      s.workflow ?? "default",
    ],
  );
  const events: [string, number][] = [
    ["queued", s.created],
    ["running", s.created + 0.1],
  ];
  if (s.wait) events.push(["waiting_for_approval", s.wait[0]], ["running", s.wait[1]]);
  if (s.finished !== undefined) events.push([s.status, s.finished]);
  else events.push([s.status, s.created + 1]);
  for (const [status, when] of events)
    await q("insert into task_events (task_id, to_status, attempt, at) values ($1, $2, 1, $3)", [
      id,
      status,
      at(when),
    ]);
  if (s.firstCall) {
    await q(
      `insert into trajectory_steps (thread_id, agent, kind, name, status, started_at, duration_ms, first_token_ms)
       values ($1, 'planner', 'model_call', 'offline', 'ok', $2, $3, $3)`,
      [id, at(s.created + s.firstCall[0]), s.firstCall[1]],
    );
  }
  for (const status of s.tools ?? [])
    await q(
      "insert into trajectory_steps (thread_id, agent, kind, name, status, started_at) values ($1, 'data', 'tool_call', 'run_sql', $2, $3)",
      [id, status, at(s.created + 1)],
    );
  if (s.cost !== undefined)
    await q("insert into task_usage (thread_id, cost_usd) values ($1, $2)", [id, s.cost]);
  if (s.approval)
    await q(
      `insert into approvals (id, task_id, interrupt_id, context, status, created_at, expires_at)
       values ($1, $2, 'i1', '{}', $3, $4, $4::timestamptz + interval '1 day')`,
      [randomUUID(), id, s.approval, at(s.created + 2)],
    );
}

let policyDir: string;
beforeAll(async () => {
  t = await createTestDatabase();
  await prepareQueue(t.db.pool);
  for (const [name, s] of Object.entries(SEEDS)) await seed(name, s);
  policyDir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-slo-"));
});
afterAll(async () => {
  fs.rmSync(policyDir, { recursive: true, force: true });
  await t?.drop();
});

type Report = Awaited<ReturnType<typeof computeSlo>>;
const value = (r: Report, name: string) => r.results.find((x) => x.name === name)!;

describe("keel slo", () => {
  it("computes each indicator exactly from the seeded tasks, and exits 1 on a breach", async () => {
    const result = await keel(["slo", "--since", "24h", "--json"], { DATABASE_URL: t.url });
    expect(result.code, result.stderr).toBe(1);
    const report = json<Report>(result);
    expect(report.tasks).toEqual({ total: 7, done: 4, failed: 1, cancelled: 1, waiting: 1, unfinished: 0 });
    const rows = report.results.map((r) => [r.name, r.value, r.sample_size, r.status]);
    expect(rows).toEqual([
      ["task_success_rate", 0.8, 5, "breached"], // 4 done / (4 done + 1 failed)
      ["p95_time_to_first_token", 3, 6, "breached"], // nearest rank of 0.2 0.3 0.8 1.0 1.5 3.0
      ["p95_time_to_completion", 40, 4, "breached"], // nearest rank of 5 10 10 40 (B: 20 s minus 10 s waiting)
      ["tool_call_error_rate", 2 / 11, 11, "breached"], // 1 error + 1 invalid of 11 (a rejection is no error)
      ["human_escalation_rate", 2 / 6, 6, "breached"], // B and H asked a person, of 6 done/failed/waiting
      ["cost_per_successful_task", 0.15, 5, "met"], // $0.60 of A-D, F / 4 done; the cancelled $5 is not counted
    ]);
    expect(report.breached).toHaveLength(5);
    const human = await keel(["slo", "--since", "24h"], { DATABASE_URL: t.url });
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/task_success_rate\s+80\.00%\s+>= 95\.00%\s+5\s+✗ breached/);
    expect(human.stdout).toMatch(/cost_per_successful_task\s+\$0\.1500\s+<= \$0\.5000\s+5\s+✓ met/);
  });

  it("counts older tasks when the window reaches back to them", async () => {
    const report = await computeSlo(t.db.pool, DEFAULT_SLO_TARGETS, { since: at(-4 * 86400) });
    expect(report.tasks.total).toBe(8);
    expect(value(report, "task_success_rate").value).toBeCloseTo(4 / 6, 10);
    expect(value(report, "cost_per_successful_task").value).toBeCloseTo(9.6 / 4, 10);
  });

  it("uses the policy file's targets, per workflow, and exits 0 when all are met", async () => {
    const file = path.join(policyDir, "keel.policy.yaml");
    fs.writeFileSync(
      file,
      `slo:
  targets:
    task_success_rate: 0.75
    p95_time_to_first_token_seconds: 3
    p95_time_to_completion_seconds: 45
    tool_call_error_rate: 0.25
    human_escalation_rate: 0.5
  workflows:
    nightly:
      p95_time_to_completion_seconds: 4
`,
    );
    const all = await keel(["slo", "--since", "24h", "--json"], {
      DATABASE_URL: t.url,
      KEEL_POLICY_FILE: file,
    });
    expect(all.code, all.stdout).toBe(0);
    expect(json<Report>(all).breached).toEqual([]);

    // The nightly workflow has one task (F, 5 s) and its own, stricter completion target.
    const nightly = await keel(["slo", "--since", "24h", "--workflow", "nightly", "--json"], {
      DATABASE_URL: t.url,
      KEEL_POLICY_FILE: file,
    });
    expect(nightly.code).toBe(1);
    const report = json<Report>(nightly);
    expect(report.tasks.total).toBe(1);
    expect(report.breached).toEqual(["p95_time_to_completion"]);
    expect(value(report, "p95_time_to_completion")).toMatchObject({ value: 5, target: 4 });
    expect(value(report, "p95_time_to_first_token")).toMatchObject({ value: 0.2, sample_size: 1 });
  });

  it("reports no data (and no breach) for an empty window", async () => {
    const result = await keel(["slo", "--since", "2000-01-01", "--until", "2000-01-02", "--json"], {
      DATABASE_URL: t.url,
    });
    expect(result.code).toBe(0);
    expect(json<Report>(result).results.every((r) => r.status === "no_data" && r.value === null)).toBe(true);
  });

  it("rejects a bad window and a policy file with a bad target, saying what to fix", async () => {
    const since = await keel(["slo", "--since", "yesterdayish"], { DATABASE_URL: t.url });
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/--since.*expected a date .* or an age like 30m, 2h, 7d/);
    const order = await keel(["slo", "--since", "1h", "--until", "2h"], { DATABASE_URL: t.url });
    expect(order.code).toBe(2);
    expect(order.stderr).toMatch(/--until must be later than --since/);
    const file = path.join(policyDir, "bad.yaml");
    fs.writeFileSync(file, "slo:\n  targets:\n    task_success_rate: 1.5\n");
    const bad = await keel(["slo"], { DATABASE_URL: t.url, KEEL_POLICY_FILE: file });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/slo\.targets\.task_success_rate/);
  });
});

describe("trajectory retention", () => {
  it("prunes steps older than the retention period, by default or as asked", async () => {
    const step = (daysAgo: number) =>
      t.db.pool.query(
        `insert into trajectory_steps (thread_id, agent, kind, name, status, started_at)
         values ('prune-test', 'planner', 'model_call', 'offline', 'ok', now() - make_interval(days => $1))`,
        [daysAgo],
      );
    await step(40);
    await step(31);
    await step(10);
    const left = async () =>
      (
        await t.db.pool.query<{ n: number }>(
          "select count(*)::int as n from trajectory_steps where thread_id = 'prune-test'",
        )
      ).rows[0]!.n;
    const byDefault = await keel(["prune-traces", "--json"], { DATABASE_URL: t.url });
    expect(json(byDefault)).toEqual({ removed: 2, older_than_days: 30 });
    expect(await left()).toBe(1);
    const configured = await keel(["prune-traces", "--json"], {
      DATABASE_URL: t.url,
      KEEL_TRAJECTORY_RETENTION_DAYS: "5",
    });
    expect(json(configured)).toEqual({ removed: 1, older_than_days: 5 });
    expect(await left()).toBe(0);
    const bad = await keel(["prune-traces", "--older-than", "0"], { DATABASE_URL: t.url });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--older-than.*expected a whole number from 1 up/);
  }, 60_000);
});
