/**
 * Throughput of the task runtime against a plain loop, side by side in one run.
 *
 *   runtime:  submit N tasks -> graphile-worker job -> TaskWorker (lease, heartbeat, fencing, task events) -> done
 *   baseline: the same compiled orchestrator graph, invoked in a plain loop with LangGraph's stock PostgresSaver,
 *             c at a time
 *
 * Both run the offline model on the same requests against the same Postgres. Round trips are the statements the pg
 * driver sent during the side's run (the worker's queue and heartbeats included), per request. Usage:
 *   npm run bench -- [--requests 1000] [--concurrency 1,8,32] [--out bench/RESULTS.md]
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import pg from "pg";
import { openDatabase, type Database } from "../checkpoints/database.js";
import { loadConfig, type KeelConfig } from "../core/config.js";
import { prepareQueue } from "../runtime/queue.js";
import { Runner } from "../runtime/runner.js";
import { submit } from "../runtime/task/store.js";
import { TaskWorker } from "../runtime/worker.js";
import { recordSection, REQUESTS } from "./common.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,8,32" },
    out: { type: "string" },
  },
});
const N = Number(values.requests);
const LEVELS = values.concurrency.split(",").map(Number);

const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

// Every statement any pg client of this process sends is counted.
let statements = 0;
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with apply below
const sendQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return sendQuery.apply(this, args);
} as typeof pg.Client.prototype.query;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function baseline(config: KeelConfig, db: Database, concurrency: number): Promise<number> {
  const runner = await Runner.withSaver(db, config, (pool) => new PostgresSaver(pool));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < N) {
        const i = next++;
        const outcome = await runner.begin(REQUESTS[i % REQUESTS.length]!, randomUUID());
        if (outcome.status !== "done") throw new Error(`baseline request ${i} ended ${outcome.status}`);
      }
    }),
  );
  return performance.now() - started;
}

/** Submit-to-running latency with an idle worker: one task at a time, so no backlog is measured. */
async function idlePickup(config: KeelConfig, db: Database, samples: number): Promise<number[]> {
  const worker = await TaskWorker.start(db, config, { concurrency: 1 });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const { task } = await submit(db.pool, config, { request: REQUESTS[4]! });
      for (;;) {
        const { rows } = await db.pool.query<{
          ms: number | null;
          status: string;
          last_error: string | null;
        }>(
          `select t.status, t.last_error, (select extract(epoch from (min(e.at) - t.created_at)) * 1000 from task_events e
                              where e.task_id = t.id and e.to_status = 'running') as ms
             from tasks t where t.id = $1`,
          [task.id],
        );
        if (rows[0]!.status === "done") {
          latencies.push(Number(rows[0]!.ms));
          break;
        }
        if (rows[0]!.status !== "queued" && rows[0]!.status !== "running") {
          throw new Error(`idle pickup task ended ${rows[0]!.status}: ${rows[0]!.last_error ?? ""}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  } finally {
    await worker.stop();
  }
  return latencies.sort((a, b) => a - b);
}

async function runtime(
  config: KeelConfig,
  db: Database,
  concurrency: number,
): Promise<{ ms: number; pickup: number[] }> {
  const started = performance.now();
  const ids: string[] = [];
  // Completion is counted from the worker's own callback: polling the task table would load the side measured.
  let settled = 0;
  let allSettled!: () => void;
  const finished = new Promise<void>((resolve) => (allSettled = resolve));
  const worker = await TaskWorker.start(db, config, {
    concurrency,
    onSettled: () => {
      if (++settled === N) allSettled();
    },
  });
  for (let i = 0; i < N; i++)
    ids.push((await submit(db.pool, config, { request: REQUESTS[i % REQUESTS.length]! })).task.id);
  await finished;
  const ms = performance.now() - started;
  await worker.stop();
  const { rows: counts } = await db.pool.query<{ done: number }>(
    "select count(*) filter (where status = 'done')::int as done from tasks where id = any($1)",
    [ids],
  );
  if (counts[0]!.done !== N) {
    const { rows: bad } = await db.pool.query<{ status: string; error_reason: string; last_error: string }>(
      "select status, error_reason, last_error from tasks where id = any($1) and status <> 'done' limit 3",
      [ids],
    );
    throw new Error(`runtime: only ${counts[0]!.done} of ${N} tasks done: ${JSON.stringify(bad)}`);
  }
  const { rows } = await db.pool.query<{ ms: number }>(
    `select extract(epoch from (min(e.at) - t.created_at)) * 1000 as ms
       from tasks t join task_events e on e.task_id = t.id and e.to_status = 'running'
      where t.id = any($1) group by t.id, t.created_at`,
    [ids],
  );
  return { ms, pickup: rows.map((r) => Number(r.ms)).sort((a, b) => a - b) };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
fs.chmodSync(dir, 0o755);
// Quiet the offline model's notice; size the pool for the highest concurrency, the same for both sides.
const config = loadConfig({
  ...process.env,
  KEEL_DATA_DIR: dir,
  KEEL_DB_POOL_SIZE: String(Math.max(...LEVELS) + 10),
});
const db = await openDatabase(config);
await prepareQueue(db.pool);
console.error(
  `bench: ${N} requests per side, concurrency ${LEVELS.join(", ")}, ${os.cpus().length} cores, node ${process.version}`,
);
const rows: string[] = [];
let idle: number[];
try {
  for (const c of LEVELS) {
    const baseCpu = process.cpuUsage();
    statements = 0;
    const base = await baseline(config, db, c);
    const baseTrips = statements / N;
    const baseCpuMs = cpuMs(process.cpuUsage(baseCpu)) / N;
    const runCpu = process.cpuUsage();
    statements = 0;
    const run = await runtime(config, db, c);
    const runTrips = statements / N;
    const runCpuMs = cpuMs(process.cpuUsage(runCpu)) / N;
    const overhead = (run.ms / base - 1) * 100;
    const line = `| ${c} | ${((N / base) * 1000).toFixed(1)} | ${((N / run.ms) * 1000).toFixed(1)} | ${(run.ms / base).toFixed(2)} (${overhead >= 0 ? "+" : ""}${overhead.toFixed(0)}%) | ${baseCpuMs.toFixed(0)} / ${runCpuMs.toFixed(0)} | ${baseTrips.toFixed(0)} / ${runTrips.toFixed(0)} | ${percentile(run.pickup, 50).toFixed(0)} | ${percentile(run.pickup, 95).toFixed(0)} |`;
    console.error(line);
    rows.push(line);
  }
  idle = await idlePickup(config, db, 30);
} finally {
  await db.close();
}
const table = [
  "| concurrency | baseline req/s (PostgresSaver) | runtime req/s (KeelSaver) | runtime/baseline time | Keel process CPU ms/request (baseline / runtime) | round trips/request (baseline / runtime) | queue wait p50 ms | queue wait p95 ms |",
  "|---|---|---|---|---|---|---|---|",
  ...rows,
  "",
  `Pickup latency with an idle worker (submit -> running, 30 single submissions): p50 ${percentile(idle, 50).toFixed(0)} ms, p95 ${percentile(idle, 95).toFixed(0)} ms.`,
].join("\n");
fs.rmSync(dir, { recursive: true, force: true });
console.log(table);
if (values.out) {
  const stamp = `Measured ${new Date().toISOString().slice(0, 10)} · ${N} requests per side · ${os.cpus().length} cores · node ${process.version}`;
  recordSection(values.out, "results", `${stamp}\n\n${table}`);
}
