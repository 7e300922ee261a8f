import pg from "pg";
import type { KeelConfig } from "../core/config.js";
import { SystemError } from "../core/errors.js";
import { acquireEmbeddedPostgres, type EmbeddedServer } from "./embedded.js";
import { migrate } from "./migrations/index.js";

/** An open connection pool on a migrated Keel database. */
export interface Database {
  readonly pool: pg.Pool;
  /** Connection string of the Keel database (for PostgresSaver and child processes). */
  readonly url: string;
  /** "embedded" when Keel started its own server under the data dir. */
  readonly kind: "embedded" | "external";
  close(): Promise<void>;
}

/**
 * Opens Keel's database: `DATABASE_URL` when set, otherwise the embedded Postgres under the data dir
 * (started on demand, shared with other Keel processes). Migrations run before this returns.
 */
export async function openDatabase(config: KeelConfig): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url: string;
  try {
    if (config.databaseUrl) {
      url = config.databaseUrl;
    } else {
      embedded = await acquireEmbeddedPostgres(config.dataDir);
      url = embedded.url;
    }
  } catch (error) {
    if (error instanceof SystemError) throw error;
    throw new SystemError("database_error", `Could not reach Postgres: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const server = embedded;
  const onExit = () => server?.release();
  if (server) process.once("exit", onExit);

  const pool = new pg.Pool({ connectionString: url, max: config.databasePoolSize });
  // Idle clients dropped by the server are replaced on next use; a broken client surfaces in its own query.
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  try {
    await migrate(pool);
  } catch (error) {
    await pool.end();
    onExit();
    throw new SystemError(
      "database_error",
      `Could not prepare the database at ${redactUrl(url)}: ${(error as Error).message}. ` +
        "Check DATABASE_URL and that the user may create tables.",
      { cause: error },
    );
  }
  let closed = false;
  return {
    pool,
    url,
    kind: server ? "embedded" : "external",
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
      process.removeListener("exit", onExit);
      onExit();
    },
  };
}

/** A connection string safe to print: the password is masked. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparsable url>";
  }
}

/**
 * A lazily opened, process-wide database, for graphs that are served by `langgraph dev`, where no Keel entry
 * point is there to open one and pass it down.
 */
export function lazyDatabase(config: KeelConfig): () => Promise<Database> {
  let opening: Promise<Database> | undefined;
  return () => {
    opening ??= openDatabase(config).catch((error: unknown) => {
      opening = undefined; // let the next call try again rather than caching the failure
      throw error;
    });
    return opening;
  };
}
