/**
 * Overhead of tracing, side by side in one run: the same batch through the task runtime
 *
 *   off:    no OpenTelemetry provider, trajectory store off (tool calls are still logged, as always)
 *   store:  the trajectory store on (every model call, handoff, approval, retry, error recorded)
 *   otlp:   the store plus OpenTelemetry spans exported over OTLP/HTTP to a receiver on loopback
 *
 * After one unmeasured warm-up batch, each round runs the three modes in a rotated order, each batch on emptied
 * run tables; the table gives the median batch time per mode and the median of its per-round ratios to `off`. The receiver runs in a child process, as a collector would. Usage:
 *   npm run bench:tracing -- [--requests 100] [--rounds 7] [--concurrency 8] [--out bench/RESULTS.md]
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { openDatabase, type Database } from "../checkpoints/database.js";
import { loadConfig, type KeelConfig } from "../core/config.js";
import { flushTracing, startTracing, stopTracing } from "../observability/otel.js";
import { configureTrajectory } from "../observability/trajectory.js";
import { prepareQueue } from "../runtime/queue.js";
import { submit } from "../runtime/task/store.js";
import { TaskWorker } from "../runtime/worker.js";
import { recordSection, REQUESTS } from "./common.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "100" },
    rounds: { type: "string", default: "7" },
    concurrency: { type: "string", default: "8" },
    out: { type: "string" },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
const C = Number(values.concurrency);
type Mode = "off" | "store" | "otlp";
const MODES: Mode[] = ["off", "store", "otlp"];

/** A loopback OTLP/HTTP receiver in its own process: it reads each body, counts it, and answers 200. */
async function startReceiver(): Promise<{ url: string; stop: () => void; bodies: () => Promise<number> }> {
  const script = `
    const http = require("node:http");
    let bodies = 0;
    const server = http.createServer((req, res) => {
      req.on("data", () => {});
      req.on("end", () => { if (req.url === "/count") { res.end(String(bodies)); return; } bodies++; res.writeHead(200, {"content-type": "application/json"}); res.end("{}"); });
    });
    server.listen(0, "127.0.0.1", () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve) =>
    child.stdout.once("data", (d: Buffer) => resolve(d.toString().trim())),
  );
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    stop: () => child.kill(),
    bodies: async () => Number(await (await fetch(`${url}/count`)).text()),
  };
}

/** Empties the run tables between batches, so that no batch pays for the rows of the ones before it. */
async function reset(db: Database): Promise<void> {
  await db.pool.query(
    `truncate checkpoints, checkpoint_blobs, checkpoint_writes, task_events, approvals, tasks, trajectory_steps,
       task_usage, policy_decisions, effects, outbox, guardrail_events`,
  );
}

async function batch(config: KeelConfig, db: Database): Promise<number> {
  let settled = 0;
  let allSettled!: () => void;
  const finished = new Promise<void>((resolve) => (allSettled = resolve));
  const started = performance.now();
  const worker = await TaskWorker.start(db, config, {
    concurrency: C,
    onSettled: () => {
      if (++settled === N) allSettled();
    },
  });
  const ids: string[] = [];
  await reset(db); // after the worker starts: it sets up the checkpoint tables on a new database
  for (let i = 0; i < N; i++)
    ids.push((await submit(db.pool, config, { request: REQUESTS[i % REQUESTS.length]! })).task.id);
  await finished;
  const ms = performance.now() - started;
  await worker.stop();
  const { rows } = await db.pool.query<{ done: number }>(
    "select count(*) filter (where status = 'done')::int as done from tasks where id = any($1)",
    [ids],
  );
  if (rows[0]!.done !== N) throw new Error(`only ${rows[0]!.done} of ${N} tasks done`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-tracing-"));
fs.chmodSync(dir, 0o755);
const receiver = await startReceiver();
const base = { ...process.env, KEEL_DATA_DIR: dir, KEEL_DB_POOL_SIZE: String(C + 10) };
const plain = loadConfig(base);
const exporting = loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
const db = await openDatabase(plain);
await prepareQueue(db.pool);
console.error(
  `bench: tracing overhead, ${N} requests x ${ROUNDS} rounds per mode, concurrency ${C}, ${os.cpus().length} cores`,
);

const times: Record<Mode, number[]> = { off: [], store: [], otlp: [] };
// CPU of this process (workers, graph, exporter; Postgres and the receiver run elsewhere) per request.
const cpuPerRequest: Record<Mode, number[]> = { off: [], store: [], otlp: [] };
let stepsPerRequest = 0;
try {
  // One unmeasured batch first: the first batch of a process pays for compiling and caching, whatever its mode.
  configureTrajectory({ enabled: false });
  console.error(`warm-up: ${((await batch(plain, db)) / 1000).toFixed(1)} s`);
  for (let round = 0; round < ROUNDS; round++) {
    const order = MODES.map((_, i) => MODES[(i + round) % MODES.length]!);
    for (const mode of order) {
      configureTrajectory({ enabled: mode !== "off" });
      if (mode === "otlp") startTracing(exporting);
      const cpu = process.cpuUsage();
      const ms = await batch(mode === "otlp" ? exporting : plain, db);
      const used = process.cpuUsage(cpu);
      cpuPerRequest[mode].push((used.user + used.system) / 1000 / N);
      if (mode === "otlp") {
        await flushTracing();
        await stopTracing();
      }
      // Each batch starts on emptied tables, so what is there now is this batch's.
      const { rows } = await db.pool.query<{ n: number }>("select count(*)::int as n from trajectory_steps");
      const steps = rows[0]!.n / N;
      if (mode === "store") stepsPerRequest = steps;
      times[mode].push(ms);
      console.error(`round ${round + 1} ${mode}: ${(ms / 1000).toFixed(1)} s (${steps} steps/request)`);
    }
  }
} finally {
  await db.close();
}
const exported = await receiver.bodies();
receiver.stop();
fs.rmSync(dir, { recursive: true, force: true });

const rows = MODES.map((mode) => {
  const m = median(times[mode]);
  // Each round's time against the same round's `off`, which ran next to it: drift between rounds cancels.
  const ratio = median(times[mode].map((t, i) => t / times.off[i]!));
  const cpu = median(cpuPerRequest[mode]);
  const cpuRatio = cpu / median(cpuPerRequest.off);
  return `| ${mode} | ${times[mode].map((t) => (t / 1000).toFixed(1)).join(" / ")} | ${(m / 1000).toFixed(1)} | ${((N / m) * 1000).toFixed(1)} | ${ratio.toFixed(3)} (${ratio >= 1 ? "+" : ""}${((ratio - 1) * 100).toFixed(1)}%) | ${cpu.toFixed(0)} (${cpuRatio >= 1 ? "+" : ""}${((cpuRatio - 1) * 100).toFixed(1)}%) |`;
});
const table = [
  "| mode | batch time per round, s | median s | req/s | time vs off, median of per-round ratios | Keel CPU ms/request, median (vs off) |",
  "|---|---|---|---|---|---|",
  ...rows,
  "",
  `The store mode recorded ${stepsPerRequest.toFixed(1)} trajectory steps per request; the OTLP receiver took ${exported} export requests.`,
].join("\n");
console.log(table);
if (values.out) {
  const stamp = `Measured ${new Date().toISOString().slice(0, 10)} · ${N} requests × ${ROUNDS} rounds per mode · concurrency ${C} · ${os.cpus().length} cores · node ${process.version}`;
  recordSection(values.out, "tracing", `${stamp}\n\n${table}`);
}
