import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { stream as rawStream, streamSSE } from "hono/streaming";
import type pg from "pg";
import type { KeelConfig } from "../core/config.js";
import type { Policy } from "../policy/file.js";
import type { GraphRegistry } from "../runtime/registry.js";
import type { RunEvent, RunStreams } from "../runtime/runs/events.js";
import { resumeThroughApprovals } from "../runtime/runs/resume.js";
import {
  MultitaskStrategy,
  RUN_STATUSES,
  RunCommand,
  RunKwargs,
  StreamMode,
  type RunRow,
} from "../runtime/runs/sql.js";
import {
  cancelRuns,
  createRun,
  deleteRun,
  listRuns,
  visibleRun,
  waitingApproval,
  type NewRun,
  type RunCaller,
} from "../runtime/runs/store.js";
import type { Caller } from "./access.js";
import { findAssistant } from "./assistants.js";
import {
  allow,
  errors,
  Flag,
  Json,
  jsonResponse,
  Refused,
  ThreadParams,
  uuidPath,
  type Vars,
} from "./http.js";
import { visibleThread } from "./threads.js";

/**
 * The Agent Server API's runs on Keel's runtime: each run is a Keel task (queued in the job queue, claimed by any
 * worker under a lease and fencing token, checkpointed in Postgres, retried and cancelled by the runtime), and its
 * stream is read from `run_events`, so any server process can serve any run's stream.
 */

const NodeList = z.union([z.literal("*"), z.array(z.string())]);

export const RunCreate = z
  .object({
    assistant_id: z.string().min(1).describe("The assistant's uuid, or a graph's id"),
    input: z.unknown().optional().describe("The graph's input"),
    command: RunCommand.nullable().optional(),
    config: z
      .object({
        configurable: Json.optional(),
        tags: z.array(z.string()).optional(),
        recursion_limit: z.number().int().positive().max(10_000).optional(),
      })
      .optional(),
    context: Json.optional(),
    metadata: Json.optional(),
    stream_mode: z.union([StreamMode, z.array(StreamMode)]).optional(),
    stream_subgraphs: z.boolean().optional(),
    stream_resumable: z
      .boolean()
      .optional()
      .describe("Accepted: every run's stream can be joined again with Last-Event-ID"),
    interrupt_before: NodeList.optional(),
    interrupt_after: NodeList.optional(),
    multitask_strategy: MultitaskStrategy.optional(),
    if_not_exists: z.enum(["create", "reject"]).optional(),
    on_disconnect: z.enum(["cancel", "continue"]).optional(),
    on_completion: z.enum(["delete", "keep"]).optional(),
    after_seconds: z.number().min(0).max(86_400).optional(),
    webhook: z
      .union([z.string().url(), z.string().regex(/^\/(?!\/)/, "must be a URL or a path on this server")])
      .optional()
      .describe(
        "Where the run's outcome is POSTed when it ends: a URL, or a path on this server (/hooks/done)",
      ),
    checkpoint_id: z.string().optional(),
    checkpoint: Json.optional(),
  })
  .openapi("RunCreate");
type RunCreate = z.infer<typeof RunCreate>;

export const Run = z
  .object({
    run_id: z.string(),
    thread_id: z.string(),
    assistant_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
    status: z.enum(RUN_STATUSES),
    metadata: Json,
    kwargs: Json,
    multitask_strategy: MultitaskStrategy,
  })
  .openapi("Run");
type Run = z.infer<typeof Run>;

const runOf = (row: RunRow): Run => ({
  run_id: row.run_id,
  thread_id: row.thread_id,
  assistant_id: row.assistant_id,
  created_at: new Date(row.created_at).toISOString(),
  updated_at: new Date(row.updated_at).toISOString(),
  status: row.status,
  metadata: row.metadata,
  kwargs: row.kwargs,
  multitask_strategy: row.multitask_strategy,
});

const RunParams = ThreadParams.extend({ run_id: uuidPath("run_id") });

/**
 * A run request as the runtime stores it: the assistant's configuration under the run's own, the stream modes
 * (values by default), and what the task row shows. Shared by runs and crons, so both mean the same by a body.
 */
/** Headers that never reach a run: credentials. */
const SECRET_HEADERS = new Set(["x-api-key", "x-tenant-id", "x-service-key"]);

/**
 * The request's `x-` headers (and `user-agent`), which LangGraph's servers hand a run in its `configurable`, so a
 * graph can read what the caller or a proxy in front says about the request. Credentials are left out.
 */
function configurableHeaders(headers: Headers | undefined): Record<string, string> {
  const given: Record<string, string> = {};
  headers?.forEach((value, key) => {
    const name = key.toLowerCase();
    if ((name.startsWith("x-") && !SECRET_HEADERS.has(name)) || name === "user-agent") given[name] = value;
  });
  return given;
}

export async function prepareRun(
  pool: pg.Pool,
  graphs: GraphRegistry,
  caller: RunCaller,
  threadId: string | undefined,
  body: RunCreate,
  /**
   * The HTTP request: its URL is this server's address (a webhook given as a path is on it); its `x-` headers go
   * to the run's `configurable`, as LangGraph's servers pass them (none from a cron).
   */
  request: { url: string; headers?: Headers },
): Promise<NewRun> {
  const assistant = await findAssistant(pool, graphs, body.assistant_id);
  const modes = body.stream_mode === undefined ? ["values" as const] : [body.stream_mode].flat();
  const given = (assistant.config as { configurable?: Record<string, unknown> }).configurable ?? {};
  const kwargs = RunKwargs.parse({
    input: body.input ?? undefined,
    command: body.command ?? undefined,
    config: {
      ...body.config,
      configurable: {
        ...given,
        ...body.config?.configurable,
        // A run from an earlier checkpoint forks the thread there.
        ...(body.checkpoint ?? {}),
        ...(body.checkpoint_id ? { checkpoint_id: body.checkpoint_id } : {}),
        ...configurableHeaders(request.headers),
      },
    },
    context: { ...assistant.context, ...body.context },
    stream_mode: modes.length ? modes : ["values"],
    subgraphs: body.stream_subgraphs ?? false,
    interrupt_before: body.interrupt_before,
    interrupt_after: body.interrupt_after,
    webhook: body.webhook ? new URL(body.webhook, request.url).href : undefined,
    temporary: threadId === undefined && (body.on_completion ?? "delete") === "delete",
  });
  return {
    threadId,
    assistant,
    kwargs,
    metadata: body.metadata ?? {},
    multitask: body.multitask_strategy ?? "reject",
    ifNotExists: body.if_not_exists ?? "reject",
    afterSeconds: body.after_seconds,
    caller,
    request: requestOf(assistant.graph_id, body.input),
    releasable: await graphs.runsOnRelease(assistant.graph_id),
  };
}

export interface RunDeps {
  pool: pg.Pool;
  config: KeelConfig;
  policy: Policy;
  graphs: GraphRegistry;
  streams: RunStreams;
  /** Aborted when the server stops: open streams end, and their clients rejoin with Last-Event-ID. */
  stopping?: AbortSignal;
}

export const callerOf = (caller: Caller): RunCaller => ({
  identity: caller.identity,
  ownerFilter: caller.role === "submitter" ? caller.identity : null,
});

/** An SSE stream route's OpenAPI entry: a stream has no zod response. */
const sse = (description: string) => ({
  200: { description, content: { "text/event-stream": { schema: z.string() } } },
  ...errors,
});

export function runRoutes(app: OpenAPIHono<Vars>, deps: RunDeps): void {
  const { pool, graphs, streams } = deps;
  const writer = (c: Context<Vars>, what: string) => allow(c, ["submitter", "admin", "reviewer"], what);

  /** Stores a run from the API's body: through the approvals store when it resumes a Keel approval. */
  const create = async (c: Context<Vars>, threadId: string | undefined, body: RunCreate): Promise<RunRow> => {
    const caller = writer(c, "start runs");
    const input = await prepareRun(pool, graphs, callerOf(caller), threadId, body, c.req.raw);
    if (threadId && body.command?.resume !== undefined) {
      await visibleThread(pool, caller, threadId);
      const waiting = await waitingApproval(pool, threadId);
      if (waiting) {
        allow(c, ["reviewer", "admin"], "decide approvals (this run resumes one)");
        return resumeThroughApprovals(pool, { ...input, threadId }, waiting.task_id, deps.policy);
      }
    }
    if (caller.role === "reviewer")
      throw new Refused(
        403,
        "forbidden",
        "A reviewer key may resume a run waiting for approval, not start one; that needs a key with the role submitter or admin.",
      );
    return createRun(pool, deps.config, input);
  };

  /**
   * Writes a run's events as server-sent events from `after` (a seq), until the run ends or the client leaves. Event
   * ids count from 0, as LangGraph's servers number them: id n is the event with seq n + 1.
   */
  const streamRun = (c: Context<Vars>, run: RunRow, after: number, cancelOnDisconnect: boolean) => {
    c.header("Content-Location", `/threads/${run.thread_id}/runs/${run.run_id}`);
    // Where to join this stream again: the SDK reconnects there with Last-Event-ID when the stream ends before the
    // run does (a server stopping hands its streams over this way, through the load balancer to another node).
    c.header(
      "Location",
      `/threads/${run.thread_id}/runs/${run.run_id}/stream${cancelOnDisconnect ? "?cancel_on_disconnect=true" : ""}`,
    );
    return streamSSE(c, async (stream) => {
      const leave = new AbortController();
      stream.onAbort(() => {
        leave.abort();
        if (cancelOnDisconnect)
          void cancelRuns(pool, run.thread_id, [run.run_id], "interrupt", {
            identity: run.owner,
            ownerFilter: null,
          }).catch(() => undefined);
      });
      const signal = deps.stopping ? AbortSignal.any([leave.signal, deps.stopping]) : leave.signal;
      for await (const event of streams.join(run.run_id, after, signal)) {
        await stream.writeSSE({ id: String(event.seq - 1), event: event.event, data: event.data });
      }
    });
  };

  /** The run's final values (or its error), once it ends: what `runs.wait` and `join` answer. */
  const outcomeOf = async (run: RunRow, signal?: AbortSignal): Promise<string> => {
    let last: RunEvent | undefined;
    for await (const event of streams.join(run.run_id, 0, signal)) {
      if (event.event === "values" || event.event === "error") last = event;
    }
    if (last?.event === "error") return `{"__error__":${last.data}}`;
    if (last) return last.data;
    const { rows } = await pool.query<{ values: unknown }>(
      `select "values" from threads where thread_id = $1`,
      [run.thread_id],
    );
    return JSON.stringify(rows[0]?.values ?? null);
  };

  /** Answers once the run ends, with newlines meanwhile so that proxies keep the connection open. */
  const waitFor = (c: Context<Vars>, run: RunRow) => {
    c.header("Content-Location", `/threads/${run.thread_id}/runs/${run.run_id}`);
    c.header("Content-Type", "application/json");
    return rawStream(c, async (stream) => {
      const leave = new AbortController();
      stream.onAbort(() => leave.abort());
      const keepAlive = setInterval(() => void stream.write("\n").catch(() => undefined), 1000);
      try {
        const body = await outcomeOf(run, leave.signal);
        await stream.write(body);
      } finally {
        clearInterval(keepAlive);
      }
    });
  };

  const body = { content: { "application/json": { schema: RunCreate } }, required: true };
  const json = jsonResponse;

  for (const stateless of [false, true]) {
    const base = stateless ? "/runs" : "/threads/{thread_id}/runs";
    const request = stateless ? { body } : { params: ThreadParams, body };
    const threadOf = (c: Context<Vars>) =>
      stateless ? undefined : (c.req.param("thread_id") ?? "").toLowerCase();
    const what = stateless ? "a stateless run (its thread is removed after it ends)" : "a run on a thread";

    app.openapi(
      createRoute({
        method: "post",
        path: base,
        summary: `Start ${what} in the background`,
        request,
        responses: { 200: json(Run, "The run, pending"), ...errors },
      }),
      async (c) => {
        const run = await create(c, threadOf(c), RunCreate.parse(await c.req.json()));
        c.header("Content-Location", `/threads/${run.thread_id}/runs/${run.run_id}`);
        return c.json(runOf(run), 200);
      },
    );

    app.openapi(
      createRoute({
        method: "post",
        path: `${base}/stream`,
        summary: `Start ${what} and stream it (server-sent events; ids for Last-Event-ID)`,
        request,
        responses: sse(
          "The run's events: metadata first, then the stream modes asked for, error if it fails",
        ),
      }),
      async (c) => {
        const parsed = RunCreate.parse(await c.req.json());
        const run = await create(c, threadOf(c), parsed);
        return streamRun(c, run, 0, parsed.on_disconnect === "cancel");
      },
    );

    app.openapi(
      createRoute({
        method: "post",
        path: `${base}/wait`,
        summary: `Start ${what} and answer with its final values once it ends`,
        request,
        responses: { 200: json(z.unknown(), "The final values (or {__error__} if it failed)"), ...errors },
      }),
      async (c) => waitFor(c, await create(c, threadOf(c), RunCreate.parse(await c.req.json()))) as never,
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/runs",
      summary: "A thread's runs, newest first",
      request: {
        params: ThreadParams,
        query: z.object({
          limit: z.coerce.number().int().min(1).max(1000).optional(),
          offset: z.coerce.number().int().min(0).optional(),
          status: z.enum(RUN_STATUSES).optional(),
        }),
      },
      responses: { 200: json(z.array(Run), "Runs"), ...errors },
    }),
    async (c) => {
      const { thread_id } = c.req.valid("param");
      await visibleThread(pool, c.get("caller"), thread_id);
      const q = c.req.valid("query");
      const rows = await listRuns(pool, thread_id, {
        limit: q.limit ?? 10,
        offset: q.offset ?? 0,
        status: q.status,
      });
      return c.json(rows.map(runOf), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/runs/{run_id}",
      summary: "A run",
      request: { params: RunParams },
      responses: { 200: json(Run, "The run"), ...errors },
    }),
    async (c) => {
      const { thread_id, run_id } = c.req.valid("param");
      return c.json(runOf(await visibleRun(pool, run_id, thread_id, callerOf(c.get("caller")))), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/threads/{thread_id}/runs/{run_id}",
      summary: "Delete a run that has ended, with its events",
      request: { params: RunParams },
      responses: { 204: { description: "Deleted" }, ...errors },
    }),
    async (c) => {
      const caller = writer(c, "delete runs");
      const { thread_id, run_id } = c.req.valid("param");
      await deleteRun(pool, await visibleRun(pool, run_id, thread_id, callerOf(caller)));
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/runs/{run_id}/join",
      summary: "Wait for a run to end; its final values",
      request: { params: RunParams },
      responses: { 200: json(z.unknown(), "The final values"), ...errors },
    }),
    async (c) => {
      const { thread_id, run_id } = c.req.valid("param");
      return waitFor(c, await visibleRun(pool, run_id, thread_id, callerOf(c.get("caller")))) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/runs/{run_id}/stream",
      summary: "Join a run's stream (from the start, or after Last-Event-ID), wherever the run executes",
      request: {
        params: RunParams,
        query: z.object({ cancel_on_disconnect: Flag.optional() }),
      },
      responses: sse("The run's events from where the client stands"),
    }),
    async (c) => {
      const { thread_id, run_id } = c.req.valid("param");
      const run = await visibleRun(pool, run_id, thread_id, callerOf(c.get("caller")));
      const last = c.req.header("Last-Event-ID");
      // The client has seen the event with that id (seq id + 1): it gets what came after it.
      const after = last && /^\d{1,9}$/.test(last) ? Number(last) + 1 : 0;
      return streamRun(c, run, after, c.req.valid("query").cancel_on_disconnect ?? false);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/runs/{run_id}/cancel",
      summary: "Cancel a run: interrupt (stop it, keep what it did) or rollback (stop it and remove it)",
      request: {
        params: RunParams,
        query: z.object({
          wait: Flag.optional(),
          action: z.enum(["interrupt", "rollback"]).optional(),
        }),
      },
      responses: { 202: { description: "Cancelling" }, 204: { description: "Cancelled" }, ...errors },
    }),
    async (c) => {
      const caller = writer(c, "cancel runs");
      const { thread_id, run_id } = c.req.valid("param");
      const { wait, action } = c.req.valid("query");
      await cancelRuns(pool, thread_id, [run_id], action ?? "interrupt", callerOf(caller));
      if (wait && action !== "rollback") {
        for await (const _ of streams.join(run_id, 2 ** 31 - 1)) {
          // nothing to read: the join ends when the run has
        }
      }
      return c.body(null, wait ? 204 : 202);
    },
  );
}

/** What the run's task row shows as its request: the orchestrator's own request, else the graph and input. */
function requestOf(graphId: string, input: unknown): string {
  const request = (input as { request?: unknown } | null | undefined)?.request;
  if (typeof request === "string") return request;
  const text = JSON.stringify(input ?? null) ?? "null";
  return `run of ${graphId}: ${text.length > 500 ? `${text.slice(0, 500)}…` : text}`;
}
