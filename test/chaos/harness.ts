import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import net from "node:net";
import pg from "pg";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { acquireEmbeddedPostgres, restartEmbeddedPostgres } from "../../checkpoints/embedded.js";
import { openDatabase, type Database } from "../../checkpoints/database.js";
import { loadConfig } from "../../core/config.js";
import { FAILURES } from "../../core/failures.js";
import { SAMPLES } from "../../evals/samples.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { prepareQueue } from "../../runtime/queue.js";
import { submitRequest } from "../../runtime/submit.js";
import type { TaskRow } from "../../runtime/task/store.js";
import { MODEL_FAULTS, startChaosModelServer, type ModelFault } from "../fakes/chaos-model-server.js";
import { seeded } from "../helpers/random.js";

/**
 * The chaos harness: requests run on worker processes that are SIGKILLed at random moments (and by a failpoint
 * right after an effect commits), against a model server that injects faults and a Postgres that is restarted
 * under them. Every submit, acknowledgement, approval and end state is recorded, and the invariants are checked
 * against that history and the database at the end. Bounded in count and time, loopback only; it stops by itself.
 */
export interface Profile {
  name: string;
  tasks: number;
  workers: number;
  /** SIGKILLs to deliver (the failpoint's deaths after an effect commit count too). */
  kills: number;
  /** Share of worker starts that die right after their first effect commits. */
  failpointShare: number;
  postgresRestarts: number;
  /** Share of model calls that get a fault. */
  faultRate: number;
  /** Wall-clock bound of the whole run. */
  deadlineMs: number;
  seed: number;
  /** Which server: the embedded PostgreSQL 18, or Debian's PostgreSQL 15 binaries on a scratch cluster. */
  postgres?: "embedded" | "debian15";
}

export const PROFILES: Record<"short" | "full", Profile> = {
  short: {
    name: "short",
    tasks: 12,
    workers: 3,
    kills: 12,
    failpointShare: 0.25,
    postgresRestarts: 1,
    faultRate: 0.15,
    deadlineMs: 150_000,
    seed: 7,
  },
  full: {
    name: "full",
    tasks: 100,
    workers: 4,
    kills: 220,
    failpointShare: 0.25,
    postgresRestarts: 3,
    faultRate: 0.15,
    deadlineMs: 900_000,
    seed: 42,
  },
};

export interface HistoryEvent {
  at: number;
  type: "submit" | "ack" | "approval" | "effect" | "end" | "kill" | "failpoint_death" | "postgres_restart";
  task?: string;
  detail?: string;
}

export interface ChaosResult {
  profile: string;
  postgres: string;
  seed: number;
  tasks: number;
  kills: number;
  failpointDeaths: number;
  postgresRestarts: number;
  modelCalls: number;
  faults: Record<ModelFault, number>;
  outcomes: Record<string, number>;
  approvals: number;
  durationMs: number;
  violations: string[];
  history: HistoryEvent[];
}

const KEEL_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/keel.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set(["done", "failed", "cancelled"]);

/** A Postgres server the harness owns: where it is, how to crash-restart it, how to stop it. */
interface ChaosServer {
  url: string;
  version: string;
  restart(downMs: number): Promise<void>;
  close(): void;
}

async function embeddedServer(dir: string): Promise<ChaosServer> {
  const server = await acquireEmbeddedPostgres(dir);
  return {
    url: server.url,
    version: "embedded PostgreSQL",
    restart: (downMs) => restartEmbeddedPostgres(dir, downMs),
    close: () => server.release(),
  };
}

const DEBIAN15 = "/usr/lib/postgresql/15/bin";

/** Whether Debian's PostgreSQL 15 binaries are installed (`npm run chaos -- --postgres debian15` needs them). */
export const hasDebian15 = () => fs.existsSync(path.join(DEBIAN15, "pg_ctl"));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address() as net.AddressInfo;
      probe.close(() => resolve(address.port));
    });
  });
}

/** A scratch cluster of Debian's PostgreSQL 15 under `dir`, on a free loopback port (run as `postgres` under root). */
async function debian15Server(dir: string): Promise<ChaosServer> {
  if (!hasDebian15())
    throw new Error(
      `Debian's PostgreSQL 15 is not installed (${DEBIAN15}); install postgresql-15 or use --postgres embedded.`,
    );
  const owner: { uid?: number; gid?: number } =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim()),
          gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim()),
        }
      : {};
  const data = path.join(dir, "pg15");
  const pwfile = path.join(dir, "pw");
  fs.writeFileSync(pwfile, "keel\n");
  if (owner.uid !== undefined) fs.chownSync(pwfile, owner.uid, owner.gid ?? owner.uid);
  fs.mkdirSync(data, { mode: 0o700 });
  if (owner.uid !== undefined) fs.chownSync(data, owner.uid, owner.gid ?? owner.uid);
  const run = (bin: string, args: string[]) => {
    const r = spawnSync(path.join(DEBIAN15, bin), args, { ...owner, encoding: "utf8", cwd: dir });
    if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
  };
  run("initdb", ["-D", data, "-U", "keel", "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8"]);
  const port = await freePort();
  const log = path.join(data, "server.log");
  const start = () =>
    run("pg_ctl", [
      "start",
      "-w",
      "-t",
      "30",
      "-D",
      data,
      "-l",
      log,
      "-o",
      `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200`,
    ]);
  start();
  const admin = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "keel",
    password: "keel",
    database: "postgres",
  });
  await admin.connect();
  await admin.query("create database keel");
  await admin.end();
  return {
    url: `postgres://keel:keel@127.0.0.1:${port}/keel`,
    version: "PostgreSQL 15 (Debian)",
    async restart(downMs) {
      run("pg_ctl", ["stop", "-w", "-m", "immediate", "-D", data]);
      await sleep(downMs);
      start();
    },
    close() {
      spawnSync(path.join(DEBIAN15, "pg_ctl"), ["stop", "-w", "-m", "fast", "-D", data], { ...owner });
    },
  };
}

/** Retries a database call across a Postgres restart. */
async function retrying<T>(work: () => Promise<T>, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

export async function runChaos(
  profile: Profile,
  progress: (line: string) => void = () => undefined,
): Promise<ChaosResult> {
  const started = Date.now();
  const deadline = started + profile.deadlineMs;
  const random = seeded(profile.seed);
  const history: HistoryEvent[] = [];
  const record = (e: Omit<HistoryEvent, "at">) => history.push({ at: Date.now() - started, ...e });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-chaos-"));
  fs.chmodSync(dir, 0o755);
  const server = profile.postgres === "debian15" ? await debian15Server(dir) : await embeddedServer(dir);
  const model = await startChaosModelServer({ faultRate: profile.faultRate, random });
  const workerEnv = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    DATABASE_URL: server.url,
    OPENAI_BASE_URL: model.url,
    OPENAI_API_KEY: "chaos",
    KEEL_MODEL: "chaos-model",
    KEEL_MODEL_TIMEOUT_MS: "1500",
    KEEL_LEASE_SECONDS: "2",
    KEEL_RETRY_BASE_MS: "100",
    KEEL_MAX_RETRIES: "6",
    KEEL_MAX_CRASHES: "40",
    KEEL_DEPENDENCY_RETRIES: "4",
    KEEL_DEPENDENCY_RETRY_BASE_MS: "20",
    KEEL_BREAKER_THRESHOLD: "1000",
  };
  const config = loadConfig({ ...workerEnv });
  let db: Database | undefined;
  const workers = new Map<ChildProcess, { failpoint: boolean }>();
  let kills = 0;
  let failpointDeaths = 0;
  let restarts = 0;
  let approvals = 0;
  const violations: string[] = [];
  const ids: string[] = [];

  const startWorker = () => {
    // At least one worker is never armed, so the kills always have a victim.
    const unarmed = [...workers.values()].filter((w) => !w.failpoint).length;
    const failpoint = unarmed > 0 && random() < profile.failpointShare;
    const child = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "2"], {
      env: { ...workerEnv, ...(failpoint ? { KEEL_FAILPOINT: "after_effect_commit" } : {}) },
      stdio: "ignore",
    });
    workers.set(child, { failpoint });
    child.on("exit", (_code, signal) => {
      const info = workers.get(child);
      workers.delete(child);
      if (signal === "SIGKILL" && info?.failpoint && !killedByUs.has(child)) {
        failpointDeaths++;
        record({ type: "failpoint_death", detail: String(child.pid) });
      }
      if (!stopping) startWorker(); // a worker that dies for any reason is replaced
    });
  };
  const killedByUs = new Set<ChildProcess>();
  let stopping = false;

  try {
    db = await openDatabase(config);
    const pool = db.pool;
    await prepareQueue(pool);
    for (let i = 0; i < profile.workers; i++) startWorker();

    // Submits spread over the start of the run, each recorded before it is sent and once acknowledged.
    const submitting = (async () => {
      for (let i = 0; i < profile.tasks; i++) {
        const sample = SAMPLES[i % SAMPLES.length]!;
        record({ type: "submit", detail: sample.request });
        const { task } = await retrying(
          () =>
            submitRequest(pool, config, DEFAULT_POLICY.scope, {
              request: sample.request,
              idempotencyKey: `chaos-${profile.seed}-${i}`,
              submittedBy: "chaos-submitter",
            }),
          deadline,
        );
        ids.push(task.id);
        record({ type: "ack", task: task.id });
        await sleep(50 + random() * 150);
      }
    })();

    const tasks = async () =>
      (await pool.query<TaskRow>("select * from tasks where id = any($1)", [ids])).rows;

    // A person approves what waits (a second person for a sync approval, with the typed confirmation).
    const approving = (async () => {
      while (!stopping) {
        await sleep(300);
        try {
          for (const a of (await listApprovals(pool, "pending")).filter((x) => ids.includes(x.task_id))) {
            await decide(
              pool,
              a.id,
              { action: "approve", reviewer: "chaos-reviewer" },
              { policy: DEFAULT_POLICY, confirm: a.context.confirm },
            ).then(
              () => {
                approvals++;
                record({ type: "approval", task: a.task_id, detail: a.id });
              },
              () => undefined, // decided by then, or the database is restarting: the next round sees it
            );
          }
        } catch {
          // the database is restarting
        }
      }
    })();

    // Kills at random moments (mostly of workers that hold a task), with Postgres restarts spread among them.
    const restartAt = new Set(
      Array.from({ length: profile.postgresRestarts }, (_, i) =>
        Math.floor(((i + 1) * profile.kills) / (profile.postgresRestarts + 1)),
      ),
    );
    while (kills < profile.kills && Date.now() < deadline) {
      await sleep(60 + random() * 240);
      if (restartAt.has(kills) && restarts < profile.postgresRestarts) {
        restarts++;
        record({ type: "postgres_restart" });
        progress(`restarting Postgres (${restarts}/${profile.postgresRestarts})`);
        await server.restart(500 + random() * 1000);
        restartAt.delete(kills);
      }
      const busy = await pool
        .query<{ lease_owner: string }>(
          "select lease_owner from tasks where status = 'running' and lease_owner is not null",
        )
        .then((r) => new Set(r.rows.map((x) => Number(x.lease_owner.split(":")[1]))))
        .catch(() => new Set<number>());
      // Workers armed with the failpoint are left to die on their own, right after an effect commits.
      const all = [...workers.keys()].filter((w) => !workers.get(w)?.failpoint);
      const holding = all.filter((w) => busy.has(w.pid!));
      const candidates = holding.length > 0 && random() < 0.8 ? holding : all;
      const victim = candidates[Math.floor(random() * candidates.length)];
      if (!victim) {
        if (
          ids.length >= profile.tasks &&
          (await retrying(tasks, deadline)).every((x) => TERMINAL.has(x.status))
        )
          break;
        continue;
      }
      killedByUs.add(victim);
      victim.kill("SIGKILL");
      kills++;
      record({ type: "kill", detail: String(victim.pid) });
      if (kills % 20 === 0) progress(`${kills}/${profile.kills} kills`);
      // More work while the kills go on, so that most of them land on a task.
      if (
        ids.length >= profile.tasks &&
        (await retrying(tasks, deadline)).every((x) => TERMINAL.has(x.status))
      )
        break;
    }
    await submitting;

    // Then the run settles: every task must end.
    progress("waiting for every task to end");
    while (Date.now() < deadline) {
      const rows = await retrying(tasks, deadline);
      if (rows.length === ids.length && rows.every((x) => TERMINAL.has(x.status))) break;
      await sleep(500);
    }
    stopping = true;
    await approving;
    const exits = [...workers.keys()].map((w) => new Promise((resolve) => w.once("exit", resolve)));
    for (const w of workers.keys()) w.kill("SIGTERM");
    await Promise.race([Promise.all(exits), sleep(15_000)]);
    for (const w of workers.keys()) w.kill("SIGKILL");

    const final = await retrying(tasks, Date.now() + 30_000);
    // The effects, as the ledger recorded them, join the history in the order they happened.
    const effects = await pool.query<{ thread_id: string; tool: string; state: string; at: Date }>(
      "select thread_id, tool, state, coalesce(finished_at, started_at) as at from effects where thread_id = any($1)",
      [ids],
    );
    for (const e of effects.rows)
      history.push({
        at: e.at.getTime() - started,
        type: "effect",
        task: e.thread_id,
        detail: `${e.tool} ${e.state}`,
      });
    history.sort((a, b) => a.at - b.at);
    for (const task of final) record({ type: "end", task: task.id, detail: task.status });
    violations.push(...(await checkInvariants(pool, history, final)));
    const outcomes: Record<string, number> = {};
    for (const x of final) {
      const key = x.status === "failed" ? `failed:${x.error_reason ?? "?"}` : x.status;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    return {
      profile: profile.name,
      postgres: server.version,
      seed: profile.seed,
      tasks: ids.length,
      kills,
      failpointDeaths,
      postgresRestarts: restarts,
      modelCalls: model.calls,
      faults: { ...model.faults },
      outcomes,
      approvals,
      durationMs: Date.now() - started,
      violations,
      history,
    };
  } finally {
    stopping = true;
    for (const w of workers.keys()) w.kill("SIGKILL");
    await model.close();
    await db?.close().catch(() => undefined);
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The invariants, from the recorded history and the database: no acknowledged task lost, every task ended, no
 * effect twice, no approved effect undone because a worker died, every failure named, child rows settled.
 */
export async function checkInvariants(
  pool: import("pg").Pool,
  history: readonly HistoryEvent[],
  final: readonly TaskRow[],
): Promise<string[]> {
  const violations: string[] = [];
  const byId = new Map(final.map((x) => [x.id, x]));
  for (const ack of history.filter((e) => e.type === "ack")) {
    const task = byId.get(ack.task!);
    if (!task) violations.push(`lost: task ${ack.task} was acknowledged and is gone`);
    else if (!TERMINAL.has(task.status)) violations.push(`unfinished: task ${task.id} is ${task.status}`);
  }
  const ids = final.map((x) => x.id);
  const twice = await pool.query<{ thread_id: string; tool_call_id: string; n: number }>(
    `select thread_id, tool_call_id, count(*)::int as n from outbox where thread_id = any($1)
      group by thread_id, tool_call_id having count(*) > 1`,
    [ids],
  );
  for (const r of twice.rows)
    violations.push(`effect twice: ${r.n} outbox rows for ${r.thread_id} ${r.tool_call_id}`);
  const sends = await pool.query<{ thread_id: string; n: number }>(
    "select thread_id, count(*)::int as n from outbox where thread_id = any($1) group by thread_id",
    [ids],
  );
  for (const r of sends.rows)
    if (r.n > 1) violations.push(`effect twice: task ${r.thread_id} queued ${r.n} messages for one request`);
  // An approved message is withdrawn only when its tree ended for a reason of its own, never because workers died.
  const withdrawn = await pool.query<{ thread_id: string; approved_by: string | null }>(
    "select thread_id, approved_by from outbox where thread_id = any($1) and status = 'withdrawn'",
    [ids],
  );
  for (const r of withdrawn.rows) {
    const task = byId.get(r.thread_id);
    const crashy = task?.error_reason === "lease_expired" || task?.error_reason === "poison_task";
    if (r.approved_by && (task?.status === "done" || crashy))
      violations.push(
        `approved effect undone: task ${r.thread_id} (${task?.status} ${task?.error_reason ?? ""})`,
      );
  }
  // A committed effect is undone (compensated) only for a tree that failed for a reason of its own or was cancelled.
  const undone = await pool.query<{ thread_id: string; tool: string }>(
    "select thread_id, tool from effects where thread_id = any($1) and state = 'compensated'",
    [ids],
  );
  for (const r of undone.rows) {
    const task = byId.get(r.thread_id);
    if (
      task?.status === "done" ||
      task?.error_reason === "lease_expired" ||
      task?.error_reason === "poison_task"
    )
      violations.push(
        `effect undone: ${r.tool} of task ${r.thread_id} (${task.status} ${task.error_reason ?? ""})`,
      );
  }
  for (const task of final.filter((x) => x.status === "failed")) {
    if (!task.error_reason || !(task.error_reason in FAILURES) || !task.last_error)
      violations.push(`unnamed failure: task ${task.id} (${task.error_reason ?? "no reason"})`);
    else if (task.error_reason === "internal")
      violations.push(`unclassified failure: task ${task.id}: ${task.last_error}`);
  }
  const children = await pool.query<{ id: string; root_id: string; status: string }>(
    "select id, root_id, status from tasks where root_id = any($1) and parent_id is not null and status not in ('done', 'failed', 'cancelled')",
    [ids],
  );
  for (const c of children.rows) violations.push(`child unsettled: ${c.id} of ${c.root_id} is ${c.status}`);
  return violations;
}

/** The results as the table `docs/RELIABILITY.md` keeps. */
export function resultTable(r: ChaosResult): string {
  const faults = MODEL_FAULTS.map((f) => `${f} ${r.faults[f]}`).join(", ");
  const outcomes = Object.entries(r.outcomes)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return [
    "| measure | value |",
    "| --- | --- |",
    `| profile (seed) | ${r.profile} (${r.seed}) |`,
    `| Postgres | ${r.postgres} |`,
    `| requests | ${r.tasks} |`,
    `| worker SIGKILLs by the harness | ${r.kills} |`,
    `| worker deaths right after an effect commit (failpoint) | ${r.failpointDeaths} |`,
    `| Postgres restarts (immediate stop, start) | ${r.postgresRestarts} |`,
    `| model calls | ${r.modelCalls} |`,
    `| model faults injected | ${Object.values(r.faults).reduce((a, b) => a + b, 0)} (${faults}) |`,
    `| approvals given | ${r.approvals} |`,
    `| outcomes | ${outcomes} |`,
    `| duration | ${(r.durationMs / 1000).toFixed(0)} s |`,
    `| invariant violations | ${r.violations.length} |`,
  ].join("\n");
}
