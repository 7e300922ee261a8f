import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { acquireEmbeddedPostgres, type EmbeddedServer } from "../../checkpoints/embedded.js";

let server: EmbeddedServer | undefined;
let dir: string | undefined;

/** One real Postgres for the whole run (embedded, under a temp dir); each test file makes its own database. */
export async function setup(project: TestProject): Promise<void> {
  if (process.env.KEEL_TEST_DATABASE_URL) {
    project.provide("serverUrl", process.env.KEEL_TEST_DATABASE_URL);
    return;
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-test-"));
  fs.chmodSync(dir, 0o755);
  server = await acquireEmbeddedPostgres(dir);
  project.provide("serverUrl", server.adminUrl);
}

export function teardown(): void {
  server?.release();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
  }
}
