import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";

/** Debian's PostgreSQL 15 and PgBouncer, where the machine has them (`.ci/run` installs PgBouncer). */
export const PG15_BIN = "/usr/lib/postgresql/15/bin";
export const PGBOUNCER = "/usr/sbin/pgbouncer";
export const hasPg15 = () => fs.existsSync(path.join(PG15_BIN, "pg_ctl"));
export const hasPgBouncer = () => fs.existsSync(PGBOUNCER);

const asRoot = process.getuid?.() === 0;

/** Runs a server program; as root, as the `postgres` user (neither program runs as root). */
function run(program: string, args: string[]): string {
  const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", program, ...args]] : [program, args];
  const out = spawnSync(cmd, argv, { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`${program} ${args.join(" ")} failed:\n${out.stdout}${out.stderr}`);
  return out.stdout;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A directory the server programs may write to. */
function ownedDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o700);
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    fs.chownSync(dir, uid, gid);
  }
  return dir;
}

export interface Server {
  /** Connection string of the database `keel` on it. */
  url: string;
  stop(): void;
}

/** A private PostgreSQL 15 cluster on a free loopback port, with a database `keel`; `stop` removes it. */
export async function startPg15(): Promise<Server> {
  const dir = ownedDir("keel-pg15-");
  const data = path.join(dir, "data");
  run(path.join(PG15_BIN, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--no-sync",
  ]);
  const port = await freePort();
  run(path.join(PG15_BIN, "pg_ctl"), [
    "-D",
    data,
    "-l",
    path.join(dir, "log"),
    "-w",
    "-o",
    `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off`,
    "start",
  ]);
  const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  await admin.connect();
  await admin.query("create database keel");
  await admin.end();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/keel`,
    stop() {
      run(path.join(PG15_BIN, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * PgBouncer in transaction mode in front of `target`'s database, on a free loopback port, with `poolSize` server
 * connections; `stop` ends the process it started (by the PID it wrote) and removes its files.
 */
export async function startPgBouncer(target: string, poolSize: number): Promise<Server> {
  const dir = ownedDir("keel-pgbouncer-");
  const port = await freePort();
  const to = new URL(target);
  fs.writeFileSync(path.join(dir, "users.txt"), `"${to.username}" ""\n`);
  fs.writeFileSync(
    path.join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `keel = host=${to.hostname} port=${to.port} dbname=${to.pathname.slice(1)} user=${to.username}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "auth_type = trust",
      `auth_file = ${path.join(dir, "users.txt")}`,
      "pool_mode = transaction",
      `default_pool_size = ${poolSize}`,
      "max_client_conn = 200",
      "unix_socket_dir =",
      `logfile = ${path.join(dir, "pgbouncer.log")}`,
      `pidfile = ${path.join(dir, "pgbouncer.pid")}`,
      "",
    ].join("\n"),
  );
  for (const file of fs.readdirSync(dir))
    if (asRoot) fs.chownSync(path.join(dir, file), fs.statSync(dir).uid, fs.statSync(dir).gid);
  run(PGBOUNCER, ["-d", path.join(dir, "pgbouncer.ini")]);
  const pidFile = path.join(dir, "pgbouncer.pid");
  for (let i = 0; i < 100 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  return {
    url: `postgres://${to.username}@127.0.0.1:${port}/keel`,
    stop() {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
