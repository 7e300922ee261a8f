import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { Client } from "@langchain/langgraph-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fireDueCrons } from "../../runtime/runs/crons.js";
import { pruneRunEvents } from "../../runtime/runs/events.js";
import { pruneExpiredThreads } from "../../runtime/runs/store.js";
import { KEEL_BIN } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { balance, killServers, startServe, type Served } from "../helpers/serve.js";

// Runs of the Agent Server API on keel serve, for a user's own graphs (not Keel's), through the official SDK:
// every run is a durable Keel task, its stream read back from Postgres.
const USER_GRAPHS = path.resolve(import.meta.dirname, "../fixtures/user-graph/langgraph.json");

let t: TestDatabase;
let served: Served;
let client: Client;

beforeAll(async () => {
  t = await createTestDatabase();
  served = await startServe(["--config", USER_GRAPHS], { DATABASE_URL: t.url, KEEL_USER: "ann" });
  client = new Client({ apiUrl: served.url });
});
afterAll(async () => {
  if (process.env.DEBUG_SERVE) console.log(served?.output());
  // Graceful shutdown is tested in serve.int.test.ts; here the servers are only stopped.
  killServers();
  await t?.drop();
});

/** Every event of a stream, as [event, data]. */
async function collect(stream: AsyncIterable<{ event: string; data: unknown }>) {
  const events: [string, unknown][] = [];
  for await (const chunk of stream) events.push([chunk.event, chunk.data]);
  return events;
}

describe("runs on a thread", () => {
  it("waits for a run and keeps its state on the thread, as a Keel task", async () => {
    const thread = await client.threads.create();
    const values = await client.runs.wait(thread.thread_id, "echo", { input: { text: "hello" } });
    expect(values).toEqual({ text: "hello", echoed: "HELLO" });
    const after = await client.threads.get(thread.thread_id);
    expect(after).toMatchObject({
      status: "idle",
      values: { echoed: "HELLO" },
      metadata: { graph_id: "echo" },
    });
    const runs = await client.runs.list(thread.thread_id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: "success", thread_id: thread.thread_id });
    // The run is a Keel task: same id, done, driven by the server's worker.
    const task = await t.db.pool.query("select status, submitted_by from tasks where id = $1", [
      runs[0]!.run_id,
    ]);
    expect(task.rows[0]).toEqual({ status: "done", submitted_by: "ann" });
    const state = await client.threads.getState(thread.thread_id);
    expect(state).toMatchObject({ values: { echoed: "HELLO" }, next: [] });
    expect(state.checkpoint.checkpoint_id).toBeTruthy();
    const history = await client.threads.getHistory(thread.thread_id);
    expect(history.length).toBeGreaterThanOrEqual(3);
    expect(history[0]!.checkpoint.checkpoint_id).toBe(state.checkpoint.checkpoint_id);
  });

  it("streams values, updates, tasks, checkpoints and debug, metadata first, with ids for Last-Event-ID", async () => {
    const thread = await client.threads.create();
    const events = await collect(
      client.runs.stream(thread.thread_id, "echo", {
        input: { text: "hi" },
        streamMode: ["values", "updates", "tasks", "checkpoints", "debug"],
      }),
    );
    const names = events.map(([e]) => e);
    expect(names[0]).toBe("metadata");
    expect(events[0]![1]).toMatchObject({ run_id: expect.any(String), attempt: 1 });
    for (const mode of ["values", "updates", "tasks", "checkpoints", "debug"]) expect(names).toContain(mode);
    expect(events.filter(([e]) => e === "values").at(-1)![1]).toEqual({ text: "hi", echoed: "HI" });
    expect(events.find(([e]) => e === "updates")![1]).toEqual({ shout: { echoed: "HI" } });
    // Joining the finished run's stream after an event id replays only what came after it.
    const [run] = await client.runs.list(thread.thread_id);
    const all = await collect(client.runs.joinStream(thread.thread_id, run!.run_id));
    expect(all.map(([e]) => e)).toEqual(names);
    // Ids count from 0: a client that has seen event 3 (the fourth) gets the fifth on.
    const tail = await collect(client.runs.joinStream(thread.thread_id, run!.run_id, { lastEventId: "3" }));
    expect(tail.map(([e]) => e)).toEqual(names.slice(4));
  });

  it("creates a thread from supersteps: the same checkpoints a run makes, written as state updates", async () => {
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, "echo", { input: { text: "copy me" } });
    const history = await client.threads.getHistory(thread.thread_id);
    const clone = await client.threads.create({
      graphId: "echo",
      supersteps: [
        { updates: [{ asNode: "__input__", values: { text: "copy me" } }] },
        { updates: [{ asNode: "__start__", values: { text: "copy me" } }] },
        { updates: [{ asNode: "shout", values: { echoed: "COPY ME" } }] },
      ],
    });
    expect(clone).toMatchObject({ status: "idle", values: { text: "copy me", echoed: "COPY ME" } });
    const cloned = await client.threads.getHistory(clone.thread_id);
    expect(cloned.map(({ next, values }) => ({ next, values }))).toEqual(
      history.map(({ next, values }) => ({ next, values })),
    );
    // A run on the seeded thread continues from its last checkpoint.
    expect(await client.runs.wait(clone.thread_id, "echo", { input: { text: "again" } })).toEqual({
      text: "again",
      echoed: "AGAIN",
    });
  });

  it("streams LangChain's callback events in the events mode, beside the other modes", async () => {
    const thread = await client.threads.create();
    const events = await collect(
      client.runs.stream(thread.thread_id, "echo", {
        input: { text: "ev" },
        streamMode: ["events", "values"],
      }),
    );
    expect(events[0]![0]).toBe("metadata");
    const callbacks = events
      .filter(([e]) => e === "events")
      .map(([, data]) => data as Record<string, unknown>);
    // The graph's start and end, and its node's, each with its run id; the root's stream chunks are not repeated.
    expect(callbacks[0]).toMatchObject({
      event: "on_chain_start",
      name: "LangGraph",
      run_id: expect.any(String),
    });
    expect(callbacks.at(-1)).toMatchObject({ event: "on_chain_end", data: { output: { echoed: "EV" } } });
    expect(callbacks.map((c) => c.name)).toContain("shout");
    expect(callbacks.filter((c) => c.event === "on_chain_stream" && c.name === "LangGraph")).toEqual([]);
    expect(events.filter(([e]) => e === "values").at(-1)![1]).toEqual({ text: "ev", echoed: "EV" });
  });

  it("shows an interrupt on the thread and resumes it with a command", async () => {
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, "ask", { input: { question: "Ship it?" } });
    const waiting = await client.threads.get(thread.thread_id);
    expect(waiting.status).toBe("interrupted");
    expect(Object.values(waiting.interrupts).flat()).toEqual([
      expect.objectContaining({ value: { question: "Ship it?" } }),
    ]);
    const state = await client.threads.getState(thread.thread_id);
    expect(state.next).toEqual(["ask"]);
    const values = await client.runs.wait(thread.thread_id, "ask", { command: { resume: "yes" } });
    expect(values).toEqual({ question: "Ship it?", answer: "yes" });
    expect((await client.threads.get(thread.thread_id)).status).toBe("idle");
  });

  it("makes a graph exported as a factory for each run, from the run's configuration", async () => {
    expect(await client.runs.wait(null, "dynamic", { input: { text: "ann" } })).toEqual({
      text: "ann",
      greeted: "hello ann",
    });
    expect(
      await client.runs.wait(null, "dynamic", {
        input: { text: "ann" },
        config: { configurable: { greeting: "welcome" } },
      }),
    ).toEqual({ text: "ann", greeted: "welcome ann" });
  });

  it("runs a stateless run on a thread of its own", async () => {
    const values = await client.runs.wait(null, "echo", { input: { text: "solo" } });
    expect(values).toEqual({ text: "solo", echoed: "SOLO" });
  });

  it("updates a thread's state, reads it at a checkpoint, and copies the thread", async () => {
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, "echo", { input: { text: "a" } });
    const before = await client.threads.getState(thread.thread_id);
    await client.threads.updateState(thread.thread_id, { values: { echoed: "EDITED" }, asNode: "shout" });
    expect((await client.threads.getState(thread.thread_id)).values).toMatchObject({ echoed: "EDITED" });
    const old = await client.threads.getState(thread.thread_id, before.checkpoint.checkpoint_id!);
    expect(old.values).toMatchObject({ echoed: "A" });
    const copy = await client.threads.copy(thread.thread_id);
    expect(copy.thread_id).not.toBe(thread.thread_id);
    expect((await client.threads.getState(copy.thread_id)).values).toMatchObject({ echoed: "EDITED" });
    // The whole history is copied: the copy can be read, and forked, at any earlier checkpoint.
    const ids = async (id: string) =>
      (await client.threads.getHistory(id)).map((h) => [h.checkpoint.checkpoint_id, h.values]);
    expect(await ids(copy.thread_id)).toEqual(await ids(thread.thread_id));
    const earlier = await client.threads.getState(copy.thread_id, before.checkpoint.checkpoint_id!);
    expect(earlier.values).toMatchObject({ echoed: "A" });
  });
});

describe("multitask strategies and cancel", () => {
  const slow = (label: string, ms: number) => ({ input: { label, ms } });

  it("rejects a second run on a busy thread with 422", async () => {
    const thread = await client.threads.create();
    const first = await client.runs.create(thread.thread_id, "slow", slow("first", 1500));
    await expect(client.runs.create(thread.thread_id, "slow", slow("second", 10))).rejects.toThrow(/422/);
    await client.runs.join(thread.thread_id, first.run_id);
    expect((await client.threads.getState<{ log: string[] }>(thread.thread_id)).values.log).toEqual([
      "first",
    ]);
  });

  it("enqueues a run behind the one in flight", async () => {
    const thread = await client.threads.create();
    await client.runs.create(thread.thread_id, "slow", slow("first", 800));
    const second = await client.runs.create(thread.thread_id, "slow", {
      ...slow("second", 10),
      multitaskStrategy: "enqueue",
    });
    await client.runs.join(thread.thread_id, second.run_id);
    expect((await client.threads.getState<{ log: string[] }>(thread.thread_id)).values.log).toEqual([
      "first",
      "second",
    ]);
  });

  it("interrupts the run in flight, or rolls it back", async () => {
    for (const strategy of ["interrupt", "rollback"] as const) {
      const thread = await client.threads.create();
      const first = await client.runs.create(thread.thread_id, "slow", slow("first", 20_000));
      await waitForStatus(thread.thread_id, first.run_id, "running");
      const second = await client.runs.create(thread.thread_id, "slow", {
        ...slow("second", 10),
        multitaskStrategy: strategy,
      });
      await client.runs.join(thread.thread_id, second.run_id);
      // The whole state is the second run's: a rolled-back run's stored channel values go with its checkpoints,
      // so the second run's values (of the same channel versions) are not shadowed by them.
      expect((await client.threads.getState<{ log: string[] }>(thread.thread_id)).values).toMatchObject({
        label: "second",
        log: ["second"],
      });
      const runs = await client.runs.list(thread.thread_id);
      if (strategy === "interrupt")
        expect(runs.map((r) => r.status).sort()).toEqual(["interrupted", "success"]);
      else expect(runs.map((r) => r.run_id)).toEqual([second.run_id]);
    }
  });

  it("cancels a run: its task is cancelled and the stream ends", async () => {
    const thread = await client.threads.create();
    const run = await client.runs.create(thread.thread_id, "slow", slow("first", 20_000));
    await waitForStatus(thread.thread_id, run.run_id, "running");
    await client.runs.cancel(thread.thread_id, run.run_id, true);
    expect((await client.runs.get(thread.thread_id, run.run_id)).status).toBe("interrupted");
    const task = await t.db.pool.query("select status from tasks where id = $1", [run.run_id]);
    expect(task.rows[0]!.status).toBe("cancelled");
    await client.runs.delete(thread.thread_id, run.run_id);
    await expect(client.runs.get(thread.thread_id, run.run_id)).rejects.toThrow(/404/);
  });
});

async function waitForStatus(threadId: string, runId: string, status: string, via = client) {
  const deadline = Date.now() + 20_000;
  while ((await via.runs.get(threadId, runId)).status !== status) {
    if (Date.now() > deadline) throw new Error(`run ${runId} never became ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("across processes", () => {
  it("streams a run from a second API node while a separate worker runs it, through that worker's death", async () => {
    // Two API-only nodes and worker processes on a database of their own (no in-process worker takes the run):
    // the run's stream crosses processes through Postgres.
    const own = await createTestDatabase();
    const env = { DATABASE_URL: own.url, KEEL_LEASE_SECONDS: "2" };
    const [front, other] = await Promise.all([
      startServe(["--no-worker", "--config", USER_GRAPHS], env),
      startServe(["--no-worker", "--config", USER_GRAPHS], env),
    ]);
    const startWorker = () =>
      spawn(process.execPath, [KEEL_BIN, "worker", "--config", USER_GRAPHS, "--concurrency", "1"], {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
        stdio: "ignore",
      });
    const first = startWorker();
    let second: ReturnType<typeof startWorker> | undefined;
    try {
      const a = new Client({ apiUrl: front.url });
      const b = new Client({ apiUrl: other.url });
      const thread = await a.threads.create();
      const run = await a.runs.create(thread.thread_id, "slow", {
        input: { label: "survivor", ms: 3000 },
        streamMode: ["values", "updates"],
      });
      const joined = collect(b.runs.joinStream(thread.thread_id, run.run_id));
      await waitForStatus(thread.thread_id, run.run_id, "running", a);
      await new Promise((r) => setTimeout(r, 500));
      first.kill("SIGKILL");
      second = startWorker();
      const events = await joined;
      const names = events.map(([e]) => e);
      // The first attempt's start, the worker's death, and a second attempt that carries the stream to its end.
      expect(names.filter((n) => n === "metadata").length).toBe(2);
      expect(names).not.toContain("error");
      expect(events.filter(([e]) => e === "values").at(-1)![1]).toMatchObject({ log: ["survivor"] });
      expect((await a.runs.get(thread.thread_id, run.run_id)).status).toBe("success");
      // A client that reconnects with Last-Event-ID gets exactly what came after that event.
      const replay = await collect(a.runs.joinStream(thread.thread_id, run.run_id, { lastEventId: "2" }));
      expect(replay.map(([e]) => e)).toEqual(names.slice(3));
    } finally {
      first.kill("SIGKILL");
      second?.kill("SIGTERM");
      for (const node of [front, other]) node.child.kill("SIGKILL");
      await own.drop();
    }
  });
});

describe("a stopping API node", () => {
  it("hands an SDK stream over: the client reconnects through the load balancer with Last-Event-ID and reads on", async () => {
    // Two API-only nodes behind a load balancer and a worker process, on a database of their own. The client streams
    // through the balancer from the first node; that node is stopped (SIGTERM) mid-run; the SDK's own retry joins
    // the stream again on the second node, after the last event it had.
    const own = await createTestDatabase();
    const env = { DATABASE_URL: own.url };
    const [front, other] = await Promise.all([
      startServe(["--no-worker", "--config", USER_GRAPHS], env),
      startServe(["--no-worker", "--config", USER_GRAPHS], env),
    ]);
    const lb = await balance([front.url, other.url]);
    const worker = spawn(
      process.execPath,
      [KEEL_BIN, "worker", "--config", USER_GRAPHS, "--concurrency", "1"],
      {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
        stdio: "ignore",
      },
    );
    try {
      const sdk = new Client({ apiUrl: lb.url });
      const thread = await sdk.threads.create();
      const parts: { event: string; data: unknown; id?: string }[] = [];
      let stopped: Promise<number | null> | undefined;
      for await (const part of sdk.runs.stream(thread.thread_id, "slow", {
        input: { label: "handed over", ms: 6000 },
        streamMode: ["values", "updates"],
      })) {
        parts.push(part);
        // Once the run is under way (its first values), the node serving the stream is told to stop; the run takes
        // 6 s, long enough that the stop comes first even on a loaded machine.
        if (part.event === "values" && !stopped) stopped = front.stop();
      }
      expect(await stopped).toBe(0);
      expect(front.output()).toMatch(/stopping: no new connections, open streams hand over/);
      // The stream began on the first node; the SDK asked the run's status and joined its stream again once, on
      // the second node, after the last event it had: nothing lost, nothing twice.
      const streams = lb.log.filter((r) => r.path.includes("/stream"));
      expect(streams.map((r) => [r.method, r.backend])).toEqual([
        ["POST", front.url],
        ["GET", other.url],
      ]);
      const resumedAfter = Number(streams[1]!.lastEventId);
      expect(parts[resumedAfter + 1]).toBeDefined();
      const ids = parts.map((p) => Number(p.id));
      expect(ids).toEqual([...ids.keys()]);
      expect(parts[0]!.event).toBe("metadata");
      expect(parts.map((p) => p.event)).not.toContain("error");
      expect(parts.filter((p) => p.event === "values").at(-1)!.data).toMatchObject({ log: ["handed over"] });
      expect(parts.filter((p) => p.event === "updates")).toEqual([
        expect.objectContaining({ data: { wait: { log: ["handed over"] } } }),
      ]);
      const { run_id } = parts[0]!.data as { run_id: string };
      expect((await sdk.runs.get(thread.thread_id, run_id)).status).toBe("success");
    } finally {
      worker.kill("SIGKILL");
      await lb.close();
      for (const node of [front, other]) node.child.kill("SIGKILL");
      await own.drop();
    }
  });
});

describe("crons", () => {
  it("creates, searches, pauses and deletes a cron; a bad schedule or time zone is refused with what to give", async () => {
    const thread = await client.threads.create();
    const cron = await client.crons.createForThread(thread.thread_id, "echo", {
      schedule: "*/5 * * * *",
      input: { text: "tick" },
      metadata: { team: "ops" },
    });
    expect(cron).toMatchObject({ thread_id: thread.thread_id, schedule: "*/5 * * * *", enabled: true });
    const next = new Date(cron.next_run_date);
    expect(next.getUTCMinutes() % 5).toBe(0);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(await client.crons.count({ threadId: thread.thread_id })).toBe(1);
    expect((await client.crons.search({ metadata: { team: "ops" } })).map((c) => c.cron_id)).toContain(
      cron.cron_id,
    );
    const paused = await client.crons.update(cron.cron_id, { enabled: false });
    expect(paused).toMatchObject({ enabled: false, next_run_date: null });
    await client.crons.delete(cron.cron_id);
    expect(await client.crons.count({ threadId: thread.thread_id })).toBe(0);
    await expect(
      client.crons.create("echo", { schedule: "every minute", input: { text: "x" } }),
    ).rejects.toThrow(/not a cron schedule.*five fields/);
    await expect(
      client.crons.create("echo", { schedule: "0 9 * * *", timezone: "Mars/Olympus", input: { text: "x" } }),
    ).rejects.toThrow(/not a time zone/);
  });

  it("fires once per matching minute, in its time zone, through the workers' minute tick", async () => {
    const thread = await client.threads.create();
    const cron = await client.crons.createForThread(thread.thread_id, "echo", {
      schedule: "30 9 * * *",
      timezone: "Europe/Paris",
      input: { text: "morning" },
    });
    // 09:30 in Paris in December is 08:30 UTC.
    const at = new Date("2026-12-07T08:30:10Z");
    expect(await fireDueCrons(t.db.pool, t.config, new Date("2026-12-07T09:30:00Z"))).toMatchObject({
      fired: [],
    });
    expect((await fireDueCrons(t.db.pool, t.config, at)).fired).toEqual([cron.cron_id]);
    expect((await fireDueCrons(t.db.pool, t.config, at)).fired).toEqual([]); // that minute has fired
    const [run] = await client.runs.list(thread.thread_id);
    expect(run!.metadata).toMatchObject({ cron_id: cron.cron_id });
    expect(await client.runs.join(thread.thread_id, run!.run_id)).toMatchObject({ echoed: "MORNING" });
    // graphile-worker's scheduler runs the tick: the server's worker registered it.
    const { rows } = await t.db.pool.query(
      "select 1 from graphile_worker._private_known_crontabs where identifier = 'keel_cron_tick'",
    );
    expect(rows).toHaveLength(1);
  });
});

describe("run options", () => {
  it("posts a finished run's outcome to its webhook", async () => {
    const received: { status?: string; values?: unknown; run_id?: string }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        received.push(JSON.parse(body) as (typeof received)[number]);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const { port } = receiver.address() as { port: number };
      const thread = await client.threads.create();
      const run = await client.runs.create(thread.thread_id, "echo", {
        input: { text: "hook" },
        webhook: `http://127.0.0.1:${port}/done`,
      });
      await client.runs.join(thread.thread_id, run.run_id);
      const deadline = Date.now() + 20_000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(received).toEqual([
        expect.objectContaining({
          run_id: run.run_id,
          status: "success",
          values: { text: "hook", echoed: "HOOK" },
        }),
      ]);
    } finally {
      receiver.close();
    }
  });

  it("starts a run after a delay, creates its thread on request, and cancels it when its stream's client leaves", async () => {
    const thread = await client.threads.create();
    const later = await client.runs.create(thread.thread_id, "echo", {
      input: { text: "later" },
      afterSeconds: 2,
    });
    await new Promise((r) => setTimeout(r, 700));
    expect((await client.runs.get(thread.thread_id, later.run_id)).status).toBe("pending");
    expect(await client.runs.join(thread.thread_id, later.run_id)).toMatchObject({ echoed: "LATER" });

    const fresh = "0190bbbb-0000-7000-8000-000000000001";
    await expect(client.runs.wait(fresh, "echo", { input: { text: "x" } })).rejects.toThrow(/404/);
    expect(
      await client.runs.wait(fresh, "echo", { input: { text: "x" }, ifNotExists: "create" }),
    ).toMatchObject({
      echoed: "X",
    });

    const leaving = await client.threads.create();
    const controller = new AbortController();
    const stream = client.runs.stream(leaving.thread_id, "slow", {
      input: { label: "left", ms: 20_000 },
      onDisconnect: "cancel",
      signal: controller.signal,
    });
    for await (const chunk of stream) {
      if (chunk.event === "metadata") break; // the client leaves once the run has started
    }
    controller.abort();
    const [run] = await client.runs.list(leaving.thread_id);
    await waitForStatus(leaving.thread_id, run!.run_id, "interrupted");
  });
});

describe("housekeeping", () => {
  it("drops ended runs' stream events after their retention, and stateless runs' threads once they expire", async () => {
    const thread = await client.threads.create();
    const run = await client.runs.create(thread.thread_id, "echo", { input: { text: "old" } });
    await client.runs.join(thread.thread_id, run.run_id);
    expect((await collect(client.runs.joinStream(thread.thread_id, run.run_id))).length).toBeGreaterThan(1);
    expect(await pruneRunEvents(t.db.pool, 24)).toBe(0); // not old enough yet
    await t.db.pool.query("update runs set updated_at = now() - interval '2 days' where run_id = $1", [
      run.run_id,
    ]);
    expect(await pruneRunEvents(t.db.pool, 24)).toBeGreaterThan(0);
    expect(await collect(client.runs.joinStream(thread.thread_id, run.run_id))).toEqual([]);
    // The run and its thread's state stay; waiting for it answers the thread's values.
    expect((await client.runs.get(thread.thread_id, run.run_id)).status).toBe("success");
    expect(await client.runs.join(thread.thread_id, run.run_id)).toMatchObject({ echoed: "OLD" });

    await client.runs.wait(null, "echo", { input: { text: "passing" } });
    const { rows } = await t.db.pool.query<{ thread_id: string }>(
      "select thread_id from threads where expires_at is not null and \"values\"->>'text' = 'passing'",
    );
    expect(rows).toHaveLength(1);
    await t.db.pool.query(
      "update threads set expires_at = now() - interval '1 minute' where thread_id = $1",
      [rows[0]!.thread_id],
    );
    expect(await pruneExpiredThreads(t.db.pool)).toBeGreaterThanOrEqual(1);
    await expect(client.threads.get(rows[0]!.thread_id)).rejects.toThrow(/404/);
  });
});

describe("the project's own routes and generative UI (http.app and ui of langgraph.json)", () => {
  it("mounts the project's Hono app in front of the API: its routes, its middleware on every route, its errors", async () => {
    const hello = await fetch(`${served.url}/hello`);
    expect(await hello.json()).toEqual({ hello: "world" });
    expect(hello.headers.get("x-project")).toBe("user-graph");
    // Its middleware sees the API's routes too, after Keel's (the request id is Keel's).
    const info = await fetch(`${served.url}/info`);
    expect(info.headers.get("x-project")).toBe("user-graph");
    expect(info.headers.get("x-request-id")).toBeTruthy();
    // Its HTTPException answers as it made it; anything else it throws is a named server failure.
    const teapot = await fetch(`${served.url}/teapot`);
    expect([teapot.status, await teapot.text()]).toEqual([418, "short and stout"]);
    const boom = await fetch(`${served.url}/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.json()).toMatchObject({
      code: "internal",
      message: expect.stringMatching(/the route broke/),
    });
    // A path neither serves is Keel's 404.
    const missing = await fetch(`${served.url}/does/not/exist`);
    expect([missing.status, ((await missing.json()) as { code: string }).code]).toEqual([404, "not_found"]);
  });

  it("hands a run the request's x- headers in its configurable, as LangGraph's servers do, but no credentials", async () => {
    const thread = await client.threads.create();
    const headed = new Client({
      apiUrl: served.url,
      defaultHeaders: { "x-greeting": "ahoy", "x-service-key": "secret" },
    });
    expect(await headed.runs.wait(thread.thread_id, "dynamic", { input: { text: "crew" } })).toEqual({
      text: "crew",
      greeted: "ahoy crew",
    });
    const [run] = await client.runs.list(thread.thread_id);
    // The SDK's Run type leaves out what the run was asked (`kwargs`); the server answers it.
    const { kwargs } = run as unknown as { kwargs: { config: { configurable: Record<string, unknown> } } };
    const configurable = kwargs.config.configurable;
    expect(configurable["x-greeting"]).toBe("ahoy");
    expect(configurable).not.toHaveProperty("x-service-key");
  });

  it("posts a webhook given as a path to this server, and the SDK inside the server reaches the server", async () => {
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, "echo", { input: { text: "hook" }, webhook: "/hooks/done" });
    const deadline = Date.now() + 15_000;
    let received: { run_id?: string; status?: string; thread_id?: string }[] = [];
    while (Date.now() < deadline) {
      received = (await (await fetch(`${served.url}/hooks/received`)).json()) as typeof received;
      if (received.some((r) => r.thread_id === thread.thread_id)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(received.find((r) => r.thread_id === thread.thread_id)).toMatchObject({ status: "success" });
    const self = await fetch(`${served.url}/self`);
    expect(await self.json()).toEqual({ text: "me", echoed: "ME" });
  });

  it("serves an agent's UI components: the HTML that loads one, and its bundle without a key", async () => {
    const html = await client["~ui"].getComponent("echo", "shout-card");
    const host = new URL(served.url).host;
    expect(html).toContain(
      `<script src="http://${host}/ui/echo/entrypoint.js" onload='__LGUI_echo.render("shout-card", "{{shadowRootId}}")'></script>`,
    );
    const js = await fetch(`${served.url}/ui/echo/entrypoint.js`);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    const source = await js.text();
    // The bundle takes React from the page (LangGraph's UI loader hands it over).
    expect(source).toContain('globalThis[Symbol.for("LGUI_REQUIRE")]');
    expect(source).toContain("shout-card");
    const unknown = await fetch(`${served.url}/ui/nobody`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "x" }),
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      message: expect.stringMatching(/There is no UI for "nobody".*echo/),
    });
    expect((await fetch(`${served.url}/ui/echo/nothing.js`)).status).toBe(404);
  });
});
