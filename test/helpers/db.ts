import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";
import { openDatabase, type Database } from "../../checkpoints/database.js";
import { loadConfig, type KeelConfig } from "../../core/config.js";

export interface TestDatabase {
  url: string;
  config: KeelConfig;
  db: Database;
  drop(): Promise<void>;
}

/** A fresh, migrated database on the test server, for one test file. */
export async function createTestDatabase(env: Record<string, string> = {}): Promise<TestDatabase> {
  const serverUrl = inject("serverUrl");
  const name = `keel_test_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const config = loadConfig({ DATABASE_URL: url.toString(), ...env });
  const db = await openDatabase(config);
  return {
    url: url.toString(),
    config,
    db,
    async drop() {
      await db.close();
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

/**
 * Gives the test file its own database for all its tests: created before the first, dropped after the last.
 * `ready` receives it (and the environment that points a `keel` process at it).
 */
export function useTestDatabase(ready: (t: TestDatabase, env: { DATABASE_URL: string }) => void): void {
  let t: TestDatabase | undefined;
  beforeAll(async () => {
    t = await createTestDatabase();
    ready(t, { DATABASE_URL: t.url });
  });
  afterAll(async () => {
    await t?.drop();
  });
}
