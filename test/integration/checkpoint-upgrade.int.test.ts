import { randomUUID } from "node:crypto";
import { Annotation, Command, interrupt, StateGraph, type BaseCheckpointSaver } from "@langchain/langgraph";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { openDatabase, type Database } from "../../checkpoints/database.js";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { migrate, MIGRATIONS } from "../../checkpoints/migrations/index.js";
import { loadConfig } from "../../core/config.js";

// A database from before KeelSaver: Keel's migrations up to 19, then LangGraph's PostgresSaver.setup() made the
// checkpoint tables, and a thread stopped at an interrupt (a request waiting for a person). After an upgrade
// (migrations 20 and on), KeelSaver must read that thread as it was and carry it to its end.

const State = Annotation.Root({
  log: Annotation<string[]>({ reducer: (a, b) => [...a, ...b], default: () => [] }),
});

function graphOf(checkpointer: BaseCheckpointSaver) {
  return new StateGraph(State)
    .addNode("draft", () => ({ log: ["drafted"] }))
    .addNode("approve", () => {
      const answer = interrupt<string, string>("send it?");
      return { log: [`approval: ${answer}`] };
    })
    .addNode("send", () => ({ log: ["sent"] }))
    .addEdge("__start__", "draft")
    .addEdge("draft", "approve")
    .addEdge("approve", "send")
    .addEdge("send", "__end__")
    .compile({ checkpointer });
}

let name: string;
let url: string;
let db: Database | undefined;
const thread = { configurable: { thread_id: randomUUID() } };
let historyBefore: number;

beforeAll(async () => {
  const serverUrl = inject("serverUrl");
  name = `keel_test_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  url = u.toString();

  const old = new pg.Pool({ connectionString: url, max: 2 });
  try {
    // Keel before migration 20: its own tables, recorded as applied, and PostgresSaver's, made by its setup().
    await migrate(old, { through: 19 });
    const stock = new PostgresSaver(old);
    await stock.setup();
    const graph = graphOf(stock);
    await graph.invoke({ log: ["asked"] }, { ...thread, durability: "sync" });
    expect((await graph.getState(thread)).tasks[0]?.interrupts[0]?.value).toBe("send it?");
    historyBefore = 0;
    for await (const _ of graph.getStateHistory(thread)) historyBefore++;
    expect(historyBefore).toBeGreaterThan(2);
  } finally {
    await old.end();
  }
  db = await openDatabase(loadConfig({ DATABASE_URL: url }));
}, 60_000);

afterAll(async () => {
  await db?.close();
  const admin = new pg.Client({ connectionString: inject("serverUrl") });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

describe("a database whose checkpoints LangGraph's PostgresSaver wrote", () => {
  it("is upgraded in place: the migrations after 19 keep every checkpoint row", async () => {
    const { rows } = await db!.pool.query<{ n: number; ids: number[] }>(
      "select (select count(*)::int from checkpoints where thread_id = $1) as n, array_agg(id order by id) as ids from keel_migrations",
      [thread.configurable.thread_id],
    );
    expect(rows[0]!.n).toBe(historyBefore);
    expect(rows[0]!.ids).toEqual(MIGRATIONS.map((m) => m.id));
  });

  it("keeps its threads: KeelSaver reads the waiting thread as it was and carries it to its end", async () => {
    const graph = graphOf(new KeelSaver(db!.pool));
    const state = await graph.getState(thread);
    expect(state.values.log).toEqual(["asked", "drafted"]);
    expect(state.next).toEqual(["approve"]);
    expect(state.tasks[0]?.interrupts[0]?.value).toBe("send it?");

    const done = await graph.invoke(new Command({ resume: "yes" }), { ...thread, durability: "sync" });
    expect(done.log).toEqual(["asked", "drafted", "approval: yes", "sent"]);

    let history = 0;
    for await (const _ of graph.getStateHistory(thread)) history++;
    expect(history).toBeGreaterThan(historyBefore);
    const after = await graph.getState(thread);
    expect(after.next).toEqual([]);
    expect(after.values.log).toEqual(done.log);
  });
});
