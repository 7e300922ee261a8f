import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { InputError } from "../core/errors.js";
import { createLogger } from "../observability/log.js";
import { loadPolicy } from "../policy/file.js";
import { DEFAULT_QUEUE } from "../runtime/queue.js";
import { TaskWorker } from "../runtime/worker.js";
import { activeKeyCount } from "../server/access.js";
import { createApp } from "../server/app.js";
import { ensureGraphAssistants } from "../server/assistants.js";
import { loadHttpApp, UiBundles } from "../server/project.js";
import { GraphRegistry, registerGraphLogger } from "../runtime/registry.js";
import { PostgresStore } from "@langchain/langgraph-checkpoint-postgres/store";
import { withMigrationLock } from "../checkpoints/migrations/index.js";
import { withDatabase } from "./common.js";
import { KeelSaver } from "../checkpoints/keel-saver.js";
import { RunStreams } from "../runtime/runs/events.js";

export interface ServeOptions {
  port: number;
  host: string;
  /** commander's `--no-worker`: false for an API-only node. */
  worker: boolean;
  concurrency: number;
  /** The langgraph.json whose graphs are served. */
  config: string;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);
// How long requests in flight may take to finish once the server is stopping.
const DRAIN_MS = 10_000;

/**
 * `keel serve`: Keel's HTTP API on this process, with a worker beside it unless `--no-worker`. Runs until SIGTERM
 * or SIGINT: then it stops accepting connections, and its worker finishes or releases what it holds.
 */
export function serveCommand(config: KeelConfig, version: string, opts: ServeOptions): Promise<number> {
  return withDatabase(config, false, async (db) => {
    const loopback = LOOPBACK.has(opts.host);
    const keys = await activeKeyCount(db.pool);
    if (!loopback && keys === 0) {
      throw new InputError(
        `keel serve refuses --host ${opts.host} without API keys: anyone who reached it could submit, cancel and approve. Make keys first (${config.command} keys create --role admin), or bind to loopback (127.0.0.1, ::1, localhost).`,
      );
    }
    const policy = loadPolicy(config.policyFile, POLICY_CATALOG);
    const graphs = GraphRegistry.open(opts.config);
    registerGraphLogger(createLogger(config.observability, { level: "info" }).child({ name: "graph" }));
    await ensureGraphAssistants(db.pool, graphs, config.server.graphDefaults);
    const httpApp = await loadHttpApp(graphs);
    const ui = new UiBundles(graphs);
    if (graphs.project.httpUnapplied.length)
      console.log(
        `keel serve: ${path.basename(graphs.file)}'s http settings ${graphs.project.httpUnapplied.join(", ")} are not applied here (only http.app is): Keel's own keys, roles and CORS settings apply`,
      );
    // LangGraph's store, in a schema of its own; its tables are made under Keel's migration lock.
    const store = new PostgresStore({
      connectionOptions: { connectionString: db.url, max: 4 },
      schema: "langgraph_store",
      ensureTables: false,
    });
    await withMigrationLock(db.pool, () => store.setup());
    const worker = opts.worker
      ? await TaskWorker.start(db, config, {
          concurrency: opts.concurrency,
          queues: [DEFAULT_QUEUE],
          logger: createLogger(config.observability, { level: "info" }),
          graphs,
          crons: true,
        })
      : undefined;
    // An API-only node reads threads' state through a checkpointer of its own (the worker's is fenced).
    if (!worker) graphs.attach({ checkpointer: new KeelSaver(db.pool) });
    graphs.attach({ store });
    const streams = new RunStreams(db.pool);
    await streams.start();
    let workerRunning = worker !== undefined;
    void worker?.done.finally(() => (workerRunning = false));
    const stopping = new AbortController();
    const app = createApp({
      pool: db.pool,
      config,
      policy,
      version,
      workerRunning: () => workerRunning,
      // Beyond loopback, keys are required even if every key is revoked later.
      requireKeys: !loopback,
      stopping: stopping.signal,
      breakers: () => worker?.breakers() ?? [],
      graphs,
      store,
      streams,
      httpApp,
      ui,
    });
    const server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: opts.port, hostname: opts.host }, () => resolve(s));
      s.once("error", reject);
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : opts.port;
    const listening = `http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${port}`;
    // LangGraph's SDK, made without an address inside this process (a project's route, a graph), talks to this
    // server, as it does inside LangGraph's own.
    (globalThis as Record<symbol, unknown>)[Symbol.for("langgraph_api:url")] ??=
      opts.host === "0.0.0.0" ? `http://127.0.0.1:${port}` : listening;
    console.log(
      `keel serve: listening on ${listening} (${worker ? `with a worker, concurrency ${opts.concurrency}` : "API only: run keel worker elsewhere"}); graphs ${graphs.ids().join(", ")}; the API is described at /openapi.json`,
    );
    console.log(
      keys > 0
        ? `keel serve: ${keys} API key${keys === 1 ? "" : "s"} in force; every request but /ok, /info, /healthz, /readyz and /openapi.json needs one`
        : `keel serve: no API keys, so every caller is ${config.user} (admin) and only this machine can connect; ${config.command} keys create makes one`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        console.log(
          "keel serve: stopping: no new connections, open streams hand over, requests in flight finish, the worker finishes or releases its tasks",
        );
        stopping.abort();
        server.close(() => resolve());
        if ("closeIdleConnections" in server) server.closeIdleConnections();
        // Requests still open after the grace period (a client holding a connection) are cut.
        setTimeout(() => {
          if ("closeAllConnections" in server) server.closeAllConnections();
        }, DRAIN_MS).unref();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    await streams.stop();
    await worker?.stop();
    await worker?.done;
    await store.stop();
    console.log("keel serve: stopped");
    return 0;
  });
}
