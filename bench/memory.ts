/**
 * Worker memory over many AgentTasks: does anything stay behind per task?
 *
 * One process runs bundled approval-free requests one after another through the orchestrator on KeelSaver, each
 * under a signal of its own, as a worker runs each task. After the first `--warmup`
 * AgentTasks and again after `--tasks`, the heap is measured after a full garbage collection (`--expose-gc`), as
 * `process.memoryUsage().heapUsed`. The difference is what stayed behind.
 *
 *   npm run bench:memory -- [--tasks 10000] [--warmup 100] [--out bench/RESULTS.md]
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { openDatabase } from "../checkpoints/database.js";
import { loadConfig } from "../core/config.js";
import { Runner } from "../runtime/runner.js";
import { recordSection, REQUESTS } from "./common.js";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "10000" },
    warmup: { type: "string", default: "100" },
    out: { type: "string" },
  },
});
const TASKS = Number(values.tasks);
const WARMUP = Number(values.warmup);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:memory does)");

const heapAfterGc = () => {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
fs.chmodSync(dir, 0o755);
const config = loadConfig({ ...process.env, KEEL_DATA_DIR: dir });
const db = await openDatabase(config);
let agentTasks = 0;
let warm: number | undefined;
let requests = 0;
const started = performance.now();
try {
  const runner = await Runner.open(config, undefined, db);
  while (agentTasks < TASKS) {
    const task = new AbortController();
    const outcome = await runner.begin(REQUESTS[requests % REQUESTS.length]!, randomUUID(), {
      signal: task.signal,
    });
    requests++;
    if (outcome.status !== "done") throw new Error(`request ${requests} ended ${outcome.status}`);
    agentTasks += outcome.results.length;
    if (warm === undefined && agentTasks >= WARMUP) warm = heapAfterGc();
    if (requests % 200 === 0) console.error(`bench:memory: ${agentTasks} AgentTasks, ${requests} requests`);
  }
} finally {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
const end = heapAfterGc();
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const text = [
  "| AgentTasks | requests | heap after GC (MB) |",
  "|---|---|---|",
  `| ${WARMUP} (warm-up) | — | ${mb(warm!)} |`,
  `| ${agentTasks} | ${requests} | ${mb(end)} |`,
  "",
  `Growth: ${mb(end - warm!)} MB over ${agentTasks - WARMUP} AgentTasks (${((end - warm!) / (agentTasks - WARMUP)).toFixed(0)} bytes each); ${((performance.now() - started) / 1000).toFixed(0)} s.`,
].join("\n");
console.log(text);
if (values.out) {
  const stamp = `Measured ${new Date().toISOString().slice(0, 10)} · ${os.cpus().length} cores · node ${process.version}`;
  recordSection(values.out, "memory", `${stamp}\n\n${text}`);
}
