/**
 * What checkpoint retention saves, and how reads hold up as the checkpoint tables grow, measured in one run.
 *
 * 1. Bytes per finished request: N bundled approval-free requests run through the orchestrator with KeelSaver;
 *    the stored bytes of each request's thread (checkpoint and metadata JSON, channel values, pending writes, as
 *    Postgres stores them) are summed before and after retention's "keep latest" (keepLatestCheckpoint).
 * 2. Cold reads as the tables grow: the threads of step 1 are copied (same rows, new thread ids) until the
 *    checkpoints table holds about 1,000 and then about 1,000,000 checkpoints; at each size, `getTuple` of the
 *    latest checkpoint of threads never read before is timed, p50 and p95 over `--reads` threads. At the large
 *    size the threads read are from the first fifth of the copies, written before gigabytes of others, so out of
 *    Postgres' buffer cache (the operating system's file cache may still hold them).
 *
 *   npm run bench:retention -- [--requests 30] [--large 1000000] [--reads 300] [--out bench/RESULTS.md]
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { openDatabase } from "../checkpoints/database.js";
import { KeelSaver } from "../checkpoints/keel-saver.js";
import { keepLatestCheckpoint } from "../checkpoints/retention.js";
import { loadConfig } from "../core/config.js";
import { Runner } from "../runtime/runner.js";
import { recordSection, REQUESTS } from "./common.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "30" },
    large: { type: "string", default: "1000000" },
    reads: { type: "string", default: "300" },
    out: { type: "string" },
  },
});
const N = Number(values.requests);
const LARGE = Number(values.large);
const READS = Number(values.reads);

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
fs.chmodSync(dir, 0o755);
const config = loadConfig({ ...process.env, KEEL_DATA_DIR: dir });
const db = await openDatabase(config);
const STORED_BYTES = `select
    coalesce((select sum(pg_column_size(checkpoint) + pg_column_size(metadata)) from checkpoints where thread_id = $1), 0)
  + coalesce((select sum(pg_column_size(blob)) from checkpoint_writes where thread_id = $1), 0)
  + coalesce((select sum(coalesce(pg_column_size(blob), 0)) from checkpoint_blobs where thread_id = $1), 0) as bytes`;
const storedBytes = async (thread: string) =>
  Number((await db.pool.query<{ bytes: string }>(STORED_BYTES, [thread])).rows[0]!.bytes);

const lines: string[] = [];
try {
  // 1. Bytes per finished request, before and after "keep latest".
  const runner = await Runner.open(config, undefined, db);
  const threads: string[] = [];
  for (let i = 0; i < N; i++) {
    const thread = randomUUID();
    const outcome = await runner.begin(REQUESTS[i % REQUESTS.length]!, thread);
    if (outcome.status !== "done") throw new Error(`request ${i} ended ${outcome.status}`);
    threads.push(thread);
  }
  let before = 0;
  let after = 0;
  let checkpointsBefore = 0;
  const count = async (thread: string) =>
    (
      await db.pool.query<{ n: number }>("select count(*)::int as n from checkpoints where thread_id = $1", [
        thread,
      ])
    ).rows[0]!.n;
  // Kept aside as the template of step 2, before they are pruned.
  await db.pool.query(`create table bench_template_checkpoints as select * from checkpoints`);
  await db.pool.query(`create table bench_template_blobs as select * from checkpoint_blobs`);
  await db.pool.query(`create table bench_template_writes as select * from checkpoint_writes`);
  for (const thread of threads) {
    before += await storedBytes(thread);
    checkpointsBefore += await count(thread);
    // What retention applies to a request that ended done.
    await keepLatestCheckpoint(db.pool, thread, { subgraphs: "drop" });
    after += await storedBytes(thread);
  }
  const kb = (bytes: number) => (bytes / N / 1024).toFixed(1);
  lines.push(
    `Bytes stored per finished request (${N} bundled approval-free requests, ${(checkpointsBefore / N).toFixed(1)} checkpoints each): ` +
      `${kb(before)} KiB with every checkpoint, ${kb(after)} KiB after "keep latest": ${((after / before) * 100).toFixed(0)}% of it.`,
  );
  console.error(lines.at(-1));

  // 2. Cold getTuple at about 1,000 and about LARGE checkpoints.
  await db.pool.query("truncate checkpoints, checkpoint_blobs, checkpoint_writes");
  const perCopy = Number(
    (await db.pool.query<{ n: string }>("select count(*) as n from bench_template_checkpoints")).rows[0]!.n,
  );
  const saver = new KeelSaver(db.pool);
  const copies = async (n: number) => {
    // n copies of the template threads at once, each under new thread ids.
    await db.pool.query(
      `create temp table if not exists bench_ids (old text, new text);
       truncate bench_ids;
       insert into bench_ids select t.thread_id, gen_random_uuid()::text
         from (select distinct thread_id from bench_template_checkpoints) t, generate_series(1, ${n});`,
    );
    await db.pool
      .query(`insert into checkpoints select i.new, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
        c.type, c.checkpoint, c.metadata from bench_template_checkpoints c join bench_ids i on i.old = c.thread_id`);
    await db.pool
      .query(`insert into checkpoint_blobs select i.new, b.checkpoint_ns, b.channel, b.version, b.type, b.blob
        from bench_template_blobs b join bench_ids i on i.old = b.thread_id`);
    await db.pool
      .query(`insert into checkpoint_writes select i.new, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx,
        w.channel, w.type, w.blob, w.task_path from bench_template_writes w join bench_ids i on i.old = w.thread_id`);
    return (await db.pool.query<{ id: string }>("select new as id from bench_ids")).rows.map((r) => r.id);
  };
  const coldReads = async (candidates: string[]) => {
    const picked = [...candidates].sort(() => Math.random() - 0.5).slice(0, READS);
    const ms: number[] = [];
    for (const thread of picked) {
      const started = performance.now();
      const tuple = await saver.getTuple({ configurable: { thread_id: thread } });
      ms.push(performance.now() - started);
      if (!tuple) throw new Error(`no checkpoint for ${thread}`);
    }
    return ms.sort((a, b) => a - b);
  };
  const sizes: [number, number[]][] = [];
  const small = await copies(Math.max(1, Math.round(1000 / perCopy)));
  await db.pool.query("analyze checkpoints; analyze checkpoint_blobs; analyze checkpoint_writes");
  const smallCount = Number(
    (await db.pool.query<{ n: string }>("select count(*) as n from checkpoints")).rows[0]!.n,
  );
  sizes.push([smallCount, await coldReads(small)]);
  console.error(`${smallCount} checkpoints: p95 ${percentile(sizes[0]![1], 95).toFixed(2)} ms`);
  let fresh: string[] = [];
  const step = Math.max(1, Math.round(50_000 / perCopy));
  for (let total = smallCount; total < LARGE; total += step * perCopy) {
    fresh = fresh.concat(await copies(step));
    console.error(`bench:retention: ${total + step * perCopy} checkpoints`);
  }
  await db.pool.query("analyze checkpoints; analyze checkpoint_blobs; analyze checkpoint_writes");
  const largeCount = Number(
    (await db.pool.query<{ n: string }>("select count(*) as n from checkpoints")).rows[0]!.n,
  );
  // Threads of the first copies: gigabytes were written after them, so they left Postgres' buffer cache.
  sizes.push([largeCount, await coldReads(fresh.slice(0, Math.ceil(fresh.length / 5)))]);
  const [[n1, s1], [n2, s2]] = sizes as [[number, number[]], [number, number[]]];
  lines.push(
    "",
    "| checkpoints in the table | getTuple p50 ms | getTuple p95 ms |",
    "|---|---|---|",
    `| ${n1.toLocaleString("en")} | ${percentile(s1, 50).toFixed(2)} | ${percentile(s1, 95).toFixed(2)} |`,
    `| ${n2.toLocaleString("en")} | ${percentile(s2, 50).toFixed(2)} | ${percentile(s2, 95).toFixed(2)} |`,
    "",
    `p95 at ${n2.toLocaleString("en")} ÷ p95 at ${n1.toLocaleString("en")}: ${(percentile(s2, 95) / percentile(s1, 95)).toFixed(2)}.`,
  );
} finally {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
const text = lines.join("\n");
console.log(text);
if (values.out) {
  const stamp = `Measured ${new Date().toISOString().slice(0, 10)} · ${N} requests · ${READS} cold reads per size · ${os.cpus().length} cores · node ${process.version}`;
  recordSection(values.out, "retention", `${stamp}\n\n${text}`);
}
