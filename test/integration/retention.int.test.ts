import { randomUUID } from "node:crypto";
import { DeltaValue, emptyCheckpoint, ReducedValue, StateGraph, StateSchema } from "@langchain/langgraph";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { checkpointTablesSize, keepLatestCheckpoint } from "../../checkpoints/retention.js";
import { RetentionPolicy } from "../../policy/retention.js";
import { applyRetention } from "../../runtime/retention.js";
import { retryTask } from "../../runtime/task/cancel.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

// Retention of finished threads' checkpoints: what "keep the latest" keeps (including what a delta channel needs
// to be rebuilt), which threads the policy reaches, and that a dry run changes nothing.

let t: TestDatabase;
let saver: KeelSaver;
beforeAll(async () => {
  t = await createTestDatabase();
  saver = new KeelSaver(t.db.pool);
  ({ graph, plain, snapshotted } = graphs(saver));
});
afterAll(async () => {
  await t?.drop();
});
beforeEach(async () => {
  await t.db.pool.query(
    "truncate checkpoints, checkpoint_writes, checkpoint_blobs, checkpoint_retention, threads cascade",
  );
});

// `log` is an ordinary reduced channel; `notes` a delta channel, stored as writes and never snapshotted in these
// short runs (its default snapshot frequency is far above them); `Snapshotted`'s is snapshotted every 3 updates.
const notes = (snapshotFrequency?: number) =>
  new DeltaValue(
    z.array(z.string()).default(() => []),
    {
      inputSchema: z.string(),
      reducer: (current: string[], writes: string[]) => [...current, ...writes],
      ...(snapshotFrequency ? { snapshotFrequency } : {}),
    },
  );
const State = new StateSchema({
  log: new ReducedValue(
    z.array(z.string()).default(() => []),
    {
      inputSchema: z.array(z.string()),
      reducer: (a: string[], b: string[]) => [...a, ...b],
    },
  ),
  notes: notes(),
  word: z.string(),
});
const Snapshotted = new StateSchema({ notes: notes(3), word: z.string() });
const graphs = (checkpointer: KeelSaver) => ({
  graph: new StateGraph(State)
    .addNode("first", (s) => ({ log: [`${s.word}:1`], notes: `${s.word}-a` }))
    .addNode("second", (s) => ({ log: [`${s.word}:2`], notes: `${s.word}-b` }))
    .addEdge("__start__", "first")
    .addEdge("first", "second")
    .addEdge("second", "__end__")
    .compile({ checkpointer }),
  snapshotted: new StateGraph(Snapshotted)
    .addNode("first", (s) => ({ notes: `${s.word}-a` }))
    .addNode("second", (s) => ({ notes: `${s.word}-b` }))
    .addEdge("__start__", "first")
    .addEdge("first", "second")
    .addEdge("second", "__end__")
    .compile({ checkpointer }),
  plain: new StateGraph(new StateSchema({ n: z.number() }))
    .addNode("inc", (s) => ({ n: s.n + 1 }))
    .addEdge("__start__", "inc")
    .addEdge("inc", "__end__")
    .compile({ checkpointer }),
});
let graph: ReturnType<typeof graphs>["graph"];
let plain: ReturnType<typeof graphs>["plain"];
let snapshotted: ReturnType<typeof graphs>["snapshotted"];

const count = async (table: string, threadId: string) =>
  (
    await t.db.pool.query<{ n: number }>(`select count(*)::int as n from ${table} where thread_id = $1`, [
      threadId,
    ])
  ).rows[0]!.n;

describe("keeping only the latest checkpoint", () => {
  it("keeps a delta channel whole: the writes it is rebuilt from stay, and the thread goes on from it", async () => {
    const config = { configurable: { thread_id: randomUUID() } };
    for (const word of ["x", "y", "z"]) await graph.invoke({ word }, config);
    const before = await graph.getState(config);
    const checkpointsBefore = await count("checkpoints", config.configurable.thread_id);

    const removed = await keepLatestCheckpoint(t.db.pool, config.configurable.thread_id);

    // No snapshot of `notes` was stored yet, so it is rebuilt from every write since the start: all of it stays.
    expect(removed.checkpoints).toBe(0);
    expect(await count("checkpoints", config.configurable.thread_id)).toBe(checkpointsBefore);
    const after = await graph.getState(config);
    expect(after.values).toEqual(before.values);
    expect(after.values.notes).toEqual(["x-a", "x-b", "y-a", "y-b", "z-a", "z-b"]);
    await graph.invoke({ word: "w" }, config);
    const next = await graph.getState(config);
    expect(next.values.notes).toEqual([...before.values.notes, "w-a", "w-b"]);
    expect(next.values.log).toEqual([...before.values.log, "w:1", "w:2"]);
  });

  it("drops what came before a delta channel's snapshot, and the thread goes on from it", async () => {
    const config = { configurable: { thread_id: randomUUID() } };
    for (const word of ["x", "y", "z", "v"]) await snapshotted.invoke({ word }, config);
    const before = await snapshotted.getState(config);
    const checkpointsBefore = await count("checkpoints", config.configurable.thread_id);
    const writesBefore = await count("checkpoint_writes", config.configurable.thread_id);

    const removed = await keepLatestCheckpoint(t.db.pool, config.configurable.thread_id);

    // Eight updates, a snapshot every third: the checkpoints and writes before the latest snapshot go.
    expect(removed.checkpoints).toBeGreaterThan(0);
    expect(await count("checkpoints", config.configurable.thread_id)).toBe(
      checkpointsBefore - removed.checkpoints,
    );
    expect(await count("checkpoint_writes", config.configurable.thread_id)).toBeLessThan(writesBefore);
    const after = await snapshotted.getState(config);
    expect(after.values.notes).toEqual(["x-a", "x-b", "y-a", "y-b", "z-a", "z-b", "v-a", "v-b"]);
    expect(after.values).toEqual(before.values);
    await snapshotted.invoke({ word: "w" }, config);
    expect((await snapshotted.getState(config)).values.notes).toEqual([...before.values.notes, "w-a", "w-b"]);
  });

  it("keeps the checkpoints back to a delta channel's stored value, and drops the ones before it", async () => {
    // c0 (nothing stored) <- c1 (notes stored: ["a"]) <- c2 <- c3 (latest), "b" written at c1 and "c" at c2.
    const thread_id = randomUUID();
    const at = (id: string) => ({ configurable: { thread_id, checkpoint_ns: "", checkpoint_id: id } });
    const checkpoint = (id: string, version: number) => ({
      ...emptyCheckpoint(),
      id,
      channel_versions: (version ? { notes: version } : {}) as Record<string, number>,
      channel_values: {},
    });
    const meta = (step: number, counters?: [number, number]) => ({
      source: "loop" as const,
      step,
      parents: {},
      ...(counters ? { counters_since_delta_snapshot: { notes: counters } } : {}),
    });
    await saver.put(
      { configurable: { thread_id, checkpoint_ns: "" } },
      checkpoint("c0", 0),
      meta(0, [1, 1]),
      {},
    );
    const c1 = { ...checkpoint("c1", 1), channel_values: { notes: ["a"] } };
    await saver.put(at("c0"), c1, meta(1), { notes: 1 });
    await saver.putWrites(at("c1"), [["notes", "b"]], "task-1");
    await saver.put(at("c1"), checkpoint("c2", 2), meta(2, [1, 1]), { notes: 2 });
    await saver.putWrites(at("c2"), [["notes", "c"]], "task-2");
    await saver.put(at("c2"), checkpoint("c3", 3), meta(3, [2, 2]), { notes: 3 });
    const history = () => saver.getDeltaChannelHistory({ config: at("c3"), channels: ["notes"] });
    const before = await history();
    expect(before.notes!.seed).toEqual(["a"]);
    expect(before.notes!.writes.map((w) => w[2])).toEqual(["b", "c"]);

    const removed = await keepLatestCheckpoint(t.db.pool, thread_id);

    expect(removed.checkpoints).toBe(1);
    const { rows } = await t.db.pool.query<{ id: string }>(
      "select checkpoint_id as id from checkpoints where thread_id = $1 order by 1",
      [thread_id],
    );
    expect(rows.map((r) => r.id)).toEqual(["c1", "c2", "c3"]);
    expect(await history()).toEqual(before);
  });

  it("keeps exactly one checkpoint of a thread without delta channels, and only the values it points at", async () => {
    const config = { configurable: { thread_id: randomUUID() } };
    for (let i = 0; i < 3; i++) await plain.invoke({ n: i * 10 }, config);
    const before = await plain.getState(config);

    await keepLatestCheckpoint(t.db.pool, config.configurable.thread_id);

    expect(await count("checkpoints", config.configurable.thread_id)).toBe(1);
    expect((await plain.getState(config)).values).toEqual(before.values);
    const { rows } = await t.db.pool.query<{ dangling: number }>(
      `select count(*)::int as dangling from checkpoint_blobs b where thread_id = $1 and not exists (
         select 1 from checkpoints c where c.thread_id = b.thread_id and c.checkpoint_ns = b.checkpoint_ns
            and c.checkpoint -> 'channel_versions' ->> b.channel = b.version)`,
      [config.configurable.thread_id],
    );
    expect(rows[0]!.dangling).toBe(0);
    // Pruning again removes nothing more.
    expect((await keepLatestCheckpoint(t.db.pool, config.configurable.thread_id)).checkpoints).toBe(0);
  });
});

/** A Keel request's root task, finished `daysAgo`, with a thread of a few checkpoints. */
async function request(status: string, daysAgo: number, workflow = "default"): Promise<string> {
  const id = randomUUID();
  await t.db.pool.query(
    `insert into tasks (id, root_id, status, request, workflow, finished_at)
     values ($1, $1, $2, 'r', $3, case when $2 in ('done', 'failed', 'cancelled') then now() - make_interval(days => $4) end)`,
    [id, status, workflow, daysAgo],
  );
  const config = { configurable: { thread_id: id } };
  for (let i = 0; i < 3; i++) await plain.invoke({ n: i }, config);
  return id;
}

const policy = (raw: unknown) => RetentionPolicy.parse(raw);

describe("the retention policy", () => {
  it("drops a cleanly finished request's subgraph checkpoints, and keeps the latest of a failed one's", async () => {
    const inner = new StateGraph(new StateSchema({ n: z.number() }))
      .addNode("double", (s) => ({ n: s.n * 2 }))
      .addEdge("__start__", "double")
      .addEdge("double", "__end__")
      .compile();
    const outer = new StateGraph(new StateSchema({ n: z.number() }))
      .addNode("child", inner)
      .addEdge("__start__", "child")
      .addEdge("child", "__end__")
      .compile({ checkpointer: saver });
    const namespaces = async (thread: string) =>
      (
        await t.db.pool.query<{ ns: string; n: number }>(
          "select checkpoint_ns as ns, count(*)::int as n from checkpoints where thread_id = $1 group by 1 order by 1",
          [thread],
        )
      ).rows;
    const ids: Record<string, string> = {};
    for (const status of ["done", "failed"]) {
      const id = randomUUID();
      await t.db.pool.query(
        `insert into tasks (id, root_id, status, request, finished_at) values ($1, $1, $2, 'r', now() - interval '30 days')`,
        [id, status],
      );
      await outer.invoke({ n: 3 }, { configurable: { thread_id: id } });
      expect((await namespaces(id)).length).toBe(2); // the root, and the subgraph's namespace
      ids[status] = id;
    }
    await applyRetention(t.db.pool, policy({}));
    expect(await namespaces(ids.done!)).toEqual([{ ns: "", n: 1 }]);
    expect(await namespaces(ids.failed!)).toEqual([
      { ns: "", n: 1 },
      { ns: expect.stringMatching(/^child:/) as string, n: 1 },
    ]);
    expect((await outer.getState({ configurable: { thread_id: ids.done! } })).values).toEqual({ n: 6 });
  });

  it("applies to finished requests past their days, per workflow, and to nothing running or waiting", async () => {
    const old = await request("done", 8);
    const recent = await request("done", 1);
    const waiting = await request("waiting_for_approval", 30);
    const running = await request("running", 30);
    const nightly = await request("failed", 2, "nightly");
    const archive = await request("done", 400, "archive");
    const rules = policy({
      checkpoints: { keep_all_days: 7, then: "latest" },
      workflows: { nightly: { keep_all_days: 1, then: "delete" }, archive: { then: "keep" } },
    });
    const sizeBefore = await checkpointTablesSize(t.db.pool, { count: true });

    const dry = await applyRetention(t.db.pool, rules, { dryRun: true });
    expect(await checkpointTablesSize(t.db.pool, { count: true })).toEqual(sizeBefore);
    const report = await applyRetention(t.db.pool, rules);

    expect(report.pruned.map((p) => [p.thread_id, p.then]).sort()).toEqual(
      [
        [old, "latest"],
        [nightly, "delete"],
      ].sort(),
    );
    expect(dry.pruned.map((p) => p.removed)).toEqual(report.pruned.map((p) => p.removed));
    expect(report.threads).toEqual({ latest: 1, delete: 1 });
    expect(await count("checkpoints", old)).toBe(1);
    expect(await count("checkpoints", nightly)).toBe(0);
    for (const untouched of [recent, waiting, running, archive])
      expect(await count("checkpoints", untouched)).toBe(sizeBefore.rows!.checkpoints / 6);
    // Once applied, a thread is not looked at again until it ends again.
    expect((await applyRetention(t.db.pool, rules)).pruned).toEqual([]);
    // A request whose checkpoints were deleted cannot be retried from them.
    await expect(retryTask(t.db.pool, nightly)).rejects.toThrow(/retention policy deleted them/);
  });

  it("applies to idle API threads by their graph, never to one waiting for a person; delete removes the thread", async () => {
    const thread = async (status: string, graphId: string) => {
      const id = randomUUID();
      await t.db.pool.query(
        `insert into threads (thread_id, owner, status, metadata, updated_at)
         values ($1, 'ann', $2, jsonb_build_object('graph_id', $3::text), now() - interval '10 days')`,
        [id, status, graphId],
      );
      for (let i = 0; i < 2; i++) await plain.invoke({ n: i }, { configurable: { thread_id: id } });
      return id;
    };
    const idle = await thread("idle", "chat");
    const interrupted = await thread("interrupted", "chat");
    const scratch = await thread("idle", "scratch");
    const report = await applyRetention(
      t.db.pool,
      policy({ workflows: { scratch: { keep_all_days: 3, then: "delete" } } }),
    );
    expect(report.pruned.map((p) => [p.thread_id, p.kind, p.then]).sort()).toEqual(
      [
        [idle, "thread", "latest"],
        [scratch, "thread", "delete"],
      ].sort(),
    );
    expect(await count("checkpoints", idle)).toBe(1);
    expect(await count("checkpoints", interrupted)).toBe(
      (await count("checkpoints", idle)) + report.pruned[0]!.removed.checkpoints,
    );
    const { rows } = await t.db.pool.query("select thread_id from threads where thread_id = $1", [scratch]);
    expect(rows).toEqual([]);
  });
});
