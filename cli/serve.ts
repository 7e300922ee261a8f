import { serve, type ServerType } from "@hono/node-server";
import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { InputError } from "../core/errors.js";
import { createLogger } from "../observability/log.js";
import { loadPolicy } from "../policy/file.js";
import { DEFAULT_QUEUE } from "../runtime/queue.js";
import { TaskWorker } from "../runtime/worker.js";
import { createApp } from "../server/app.js";
import { withDatabase } from "./common.js";

export interface ServeOptions {
  port: number;
  host: string;
  /** commander's `--no-worker`: false for an API-only node. */
  worker: boolean;
  concurrency: number;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/**
 * `keel serve`: Keel's HTTP API on this process, with a worker beside it unless `--no-worker`. Runs until SIGTERM
 * or SIGINT: then it stops accepting connections, and its worker finishes or releases what it holds.
 */
export function serveCommand(config: KeelConfig, version: string, opts: ServeOptions): Promise<number> {
  return withDatabase(config, false, async (db) => {
    if (!LOOPBACK.has(opts.host)) {
      throw new InputError(
        `keel serve binds to loopback only (127.0.0.1, ::1, localhost), since it has no API keys yet and anyone who reaches it could submit and cancel tasks; --host ${opts.host} was refused. Put a proxy with authentication in front of it to expose it.`,
      );
    }
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG);
    const worker = opts.worker
      ? await TaskWorker.start(db, config, {
          concurrency: opts.concurrency,
          queues: [DEFAULT_QUEUE],
          logger: createLogger(config.observability, { level: "info" }),
        })
      : undefined;
    let workerRunning = worker !== undefined;
    void worker?.done.finally(() => (workerRunning = false));
    const app = createApp({
      pool: db.pool,
      config,
      policy,
      version,
      workerRunning: () => workerRunning,
    });
    const server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: opts.port, hostname: opts.host }, () => resolve(s));
      s.once("error", reject);
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : opts.port;
    console.log(
      `keel serve: listening on http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${port} (${worker ? `with a worker, concurrency ${opts.concurrency}` : "API only: run keel worker elsewhere"}); the API is described at /openapi.json`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        console.log("keel serve: stopping (no new connections; the worker finishes or releases its tasks)");
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    await worker?.stop();
    await worker?.done;
    console.log("keel serve: stopped");
    return 0;
  });
}
