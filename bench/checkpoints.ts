/**
 * The cost of a graph step under each checkpointer, side by side in one run.
 *
 * Graphs: sequences of 3 and 10 trivial nodes (each adds 1 to a counter). Savers: none, LangGraph's MemorySaver,
 * LangGraph's stock PostgresSaver, and KeelSaver unfenced and fenced (the worker's FencedSaver, each thread held
 * by a running task with a fencing token, as the runtime runs). Every invocation uses durability "sync", as the
 * runtime does, on a thread of its own. Rounds are interleaved (each round runs every saver once, in a rotated
 * order) and the checkpoint tables are emptied before each batch, so each batch starts from the same state; the
 * figure reported is the median over rounds of wall time per step (an invocation of an n-node graph is n steps).
 * Round trips are the statements the pg driver sent; commits are the transactions that wrote (an explicit COMMIT,
 * or a single writing statement sent on its own). CPU per step is counted on both sides: this process (user +
 * system, `process.cpuUsage`) and the embedded Postgres server (every process of its postmaster, the time each
 * spent on a CPU as Linux's /proc/<pid>/schedstat counts it); where that is not readable the column shows "—".
 *
 *   npm run bench:checkpoints -- [--invocations 200] [--rounds 3] [--concurrency 1,8] [--out bench/RESULTS.md]
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Annotation, StateGraph, type BaseCheckpointSaver } from "@langchain/langgraph";
import { MemorySaver } from "@langchain/langgraph-checkpoint";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import pg from "pg";
import { openDatabase } from "../checkpoints/database.js";
import { KeelSaver } from "../checkpoints/keel-saver.js";
import { loadConfig } from "../core/config.js";
import { FencedSaver } from "../runtime/fence.js";
import { recordSection } from "./common.js";

const { values } = parseArgs({
  options: {
    invocations: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,8" },
    out: { type: "string" },
  },
});
const N = Number(values.invocations);
const ROUNDS = Number(values.rounds);
const LEVELS = values.concurrency.split(",").map(Number);
const SIZES = [3, 10];

// Every statement any pg client sends is counted here (the savers' pools and Keel's alike).
const counts = { statements: 0, commits: 0 };
const inTransaction = new WeakSet<object>();
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with apply below
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0];
  const text = (typeof first === "string" ? first : ((first as { text?: string })?.text ?? "")).trim();
  counts.statements++;
  if (/^begin\b/i.test(text)) inTransaction.add(this);
  else if (/^commit\b/i.test(text)) {
    inTransaction.delete(this);
    counts.commits++;
  } else if (/^rollback\b/i.test(text)) inTransaction.delete(this);
  else if (!inTransaction.has(this) && /\b(insert|update|delete)\b/i.test(text)) counts.commits++;
  return query.apply(this, args);
} as typeof pg.Client.prototype.query;

const State = Annotation.Root({ n: Annotation<number> });
function graphOf(size: number, checkpointer: BaseCheckpointSaver | undefined) {
  const builder = new StateGraph(State);
  for (let i = 0; i < size; i++) builder.addNode(`s${i}`, (s: typeof State.State) => ({ n: s.n + 1 }));
  const b = builder as unknown as StateGraph<typeof State.spec, typeof State.State, unknown, string>;
  b.addEdge("__start__", "s0");
  for (let i = 1; i < size; i++) b.addEdge(`s${i - 1}`, `s${i}`);
  b.addEdge(`s${size - 1}`, "__end__");
  return b.compile(checkpointer ? { checkpointer } : {});
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
fs.chmodSync(dir, 0o755);
const config = loadConfig({
  ...process.env,
  KEEL_DATA_DIR: dir,
  KEEL_DB_POOL_SIZE: String(Math.max(...LEVELS) + 4),
});
const db = await openDatabase(config);
const stock = new pg.Pool({ connectionString: db.url, max: Math.max(...LEVELS) + 4 });
await new PostgresSaver(stock).setup();

interface Saver {
  name: string;
  make(): BaseCheckpointSaver | undefined;
  /** Threads this saver writes must first be held by a running task (the fenced saver). */
  hold?(saver: BaseCheckpointSaver, threads: string[]): Promise<void>;
}
const SAVERS: Saver[] = [
  { name: "none", make: () => undefined },
  { name: "MemorySaver", make: () => new MemorySaver() },
  { name: "PostgresSaver", make: () => new PostgresSaver(stock) },
  { name: "KeelSaver", make: () => new KeelSaver(db.pool) },
  {
    name: "KeelSaver fenced",
    make: () => new FencedSaver(db.pool),
    async hold(saver, threads) {
      await db.pool.query(
        `insert into tasks (id, root_id, status, fencing_token, request)
         select id, id, 'running', 1, 'bench' from unnest($1::uuid[]) as id`,
        [threads],
      );
      for (const id of threads) (saver as FencedSaver).tokens.set(id, { taskId: id, token: "1" });
    },
  },
];

interface Sample {
  usPerStep: number;
  statementsPerStep: number;
  commitsPerStep: number;
  clientCpuUsPerStep: number;
  serverCpuUsPerStep: number | undefined;
}

/** The embedded server's CPU time so far, in µs: the postmaster and every process it started. */
function serverCpuUs(): number | undefined {
  try {
    const postmaster = Number(
      fs.readFileSync(path.join(dir, "pg", "data", "postmaster.pid"), "utf8").split("\n")[0],
    );
    let ns = 0;
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (Number(entry) !== postmaster && ppid !== postmaster) continue;
        ns += Number(fs.readFileSync(`/proc/${entry}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // The process ended between the listing and the read.
      }
    }
    return ns / 1000;
  } catch {
    return undefined;
  }
}

async function batch(saver: Saver, size: number, concurrency: number): Promise<Sample> {
  await db.pool.query("truncate checkpoints, checkpoint_blobs, checkpoint_writes");
  await db.pool.query("delete from tasks where request = 'bench'");
  const checkpointer = saver.make();
  const graph = graphOf(size, checkpointer);
  const threads = Array.from({ length: N }, () => randomUUID());
  if (checkpointer && saver.hold) await saver.hold(checkpointer, threads);
  // One warm-up invocation (not counted): the first compiles statements and fills caches.
  await graph.invoke({ n: 0 }, { configurable: { thread_id: randomUUID() }, durability: "sync" });
  counts.statements = 0;
  counts.commits = 0;
  let next = 0;
  const server0 = serverCpuUs();
  const client0 = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < N) {
        const thread_id = threads[next++]!;
        const out = await graph.invoke({ n: 0 }, { configurable: { thread_id }, durability: "sync" });
        if (out.n !== size) throw new Error(`${saver.name}: expected ${size}, got ${out.n}`);
      }
    }),
  );
  const ms = performance.now() - started;
  const client = process.cpuUsage(client0);
  const server1 = serverCpuUs();
  const steps = N * size;
  return {
    usPerStep: (ms * 1000) / steps,
    statementsPerStep: counts.statements / steps,
    commitsPerStep: counts.commits / steps,
    clientCpuUsPerStep: (client.user + client.system) / steps,
    serverCpuUsPerStep:
      server0 === undefined || server1 === undefined ? undefined : (server1 - server0) / steps,
  };
}

/** The floor of any durable write: a one-row insert committed on its own (fsync included), median of 300. */
async function commitFloorUs(): Promise<number> {
  const client = await db.pool.connect();
  try {
    await client.query("create table if not exists bench_floor (id int)");
    const us: number[] = [];
    for (let i = 0; i < 320; i++) {
      const started = performance.now();
      await client.query("insert into bench_floor values ($1)", [i]);
      if (i >= 20) us.push((performance.now() - started) * 1000);
    }
    return median(us);
  } finally {
    client.release();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

console.error(
  `bench:checkpoints: ${N} invocations per batch, ${ROUNDS} rounds, concurrency ${LEVELS.join(", ")}, ${os.cpus().length} cores, node ${process.version}`,
);
const lines: string[] = [];
let floor: number | undefined;
try {
  for (const size of SIZES) {
    for (const c of LEVELS) {
      const samples = new Map<string, Sample[]>(SAVERS.map((s) => [s.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const order = SAVERS.map((_, i) => SAVERS[(i + round) % SAVERS.length]!);
        for (const saver of order) samples.get(saver.name)!.push(await batch(saver, size, c));
      }
      const us = (name: string) => median(samples.get(name)!.map((s) => s.usPerStep));
      for (const saver of SAVERS) {
        const own = samples.get(saver.name)!;
        const server = own.map((s) => s.serverCpuUsPerStep);
        const serverCpu = server.every((x) => x !== undefined) ? median(server).toFixed(0) : "—";
        const line = `| ${size} | ${c} | ${saver.name} | ${us(saver.name).toFixed(0)} | ${(us(saver.name) / us("MemorySaver")).toFixed(2)} | ${(us("PostgresSaver") / us(saver.name)).toFixed(2)} | ${median(own.map((s) => s.statementsPerStep)).toFixed(2)} | ${median(own.map((s) => s.commitsPerStep)).toFixed(2)} | ${median(own.map((s) => s.clientCpuUsPerStep)).toFixed(0)} | ${serverCpu} |`;
        console.error(line);
        lines.push(line);
      }
    }
  }
  floor = await commitFloorUs();
} finally {
  await stock.end();
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
const table = [
  "| nodes | concurrency | saver | µs per step (median) | × MemorySaver | PostgresSaver ÷ this | round trips per step | commits per step | Keel process CPU µs per step | Postgres CPU µs per step |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...lines,
  "",
  `The floor of a durable step on this machine: a one-row insert committed on its own takes ${floor?.toFixed(0) ?? "?"} µs (median of 300, measured in the same run).`,
].join("\n");
console.log(table);
if (values.out) {
  const stamp = `Measured ${new Date().toISOString().slice(0, 10)} · ${N} invocations per batch · ${ROUNDS} interleaved rounds · ${os.cpus().length} cores · node ${process.version}`;
  recordSection(values.out, "checkpoints", `${stamp}\n\n${table}`);
}
