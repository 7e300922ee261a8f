import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { timeout } from "hono/timeout";
import { streamSSE } from "hono/streaming";
import type pg from "pg";
import type { KeelConfig } from "../core/config.js";
import { InputError, isKeelError, NotFoundError } from "../core/errors.js";
import { FAILURES } from "../core/failures.js";
import type { Policy } from "../policy/file.js";
import { decide, listApprovals, type ApprovalRow } from "../runtime/approvals.js";
import { targetsFor } from "../policy/slo-targets.js";
import { computeSlo } from "../observability/slo.js";
import { readTaskTrace } from "../reports/trace.js";
import { checkpointBytes, migrationsApplied } from "../runtime/health.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { submitRequest } from "../runtime/submit.js";
import { cancelTree, retryTask } from "../runtime/task/cancel.js";
import { TASK_STATUSES } from "../runtime/task/rules.js";
import { getTask, getTree, listTasks, type TaskRow } from "../runtime/task/store.js";
import { activeKeyCount, authenticate, type Caller } from "./access.js";
import { allow, errors, fail, Refused, statusFor, type Vars } from "./http.js";
import { assistantRoutes } from "./assistants.js";
import type { GraphRegistry } from "../runtime/registry.js";
import { createMetrics } from "./metrics.js";
import { storeRoutes } from "./store.js";
import { threadRoutes } from "./threads.js";
import { uiRoutes, type UiBundles } from "./project.js";
import { runRoutes } from "./runs.js";
import { cronRoutes } from "./crons.js";
import { internalRoutes } from "./internal.js";
import { stateRoutes } from "./state.js";
import type { RunStreams } from "../runtime/runs/events.js";
import type { PostgresStore } from "@langchain/langgraph-checkpoint-postgres/store";
import { RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";

/** What the HTTP API needs: the database, the configuration, the request scope, and whether a worker runs here. */
export interface ServerDeps {
  pool: pg.Pool;
  config: KeelConfig;
  /** The policy in force: its scope checks requests, its risk rules decide edited approvals again. */
  policy: Policy;
  version: string;
  /** Whether this process runs a worker (`keel serve` without `--no-worker`). */
  workerRunning: () => boolean;
  /**
   * Whether every request must carry an API key. A server bound beyond loopback always requires one; on loopback,
   * keys are required as soon as one exists (until then every caller is the local user, as admin).
   */
  requireKeys?: boolean;
  /** Aborted when the server starts stopping: /readyz answers 503 and open streams hand over (see the route). */
  stopping?: AbortSignal;
  /** The graphs of langgraph.json, served as the Agent Server API's assistants (none: no /assistants routes). */
  graphs?: GraphRegistry;
  /** LangGraph's long-term memory store, served as `/store/...` (none: no store routes). */
  store?: PostgresStore;
  /** The run streams this process serves (needed for the runs routes). */
  streams?: RunStreams;
  /** The project's own routes (`http.app` of langgraph.json), mounted in front of the API's. */
  httpApp?: Hono;
  /** The project's generative UI bundles (`ui` of langgraph.json). */
  ui?: UiBundles;
  /** The circuit breakers of this process's worker, for /metrics. */
  breakers?: () => { name: string; state: string; release?: string }[];
}

// Routes anyone may call: liveness, readiness and the description of the API.
const PUBLIC = new Set(["/ok", "/info", "/healthz", "/readyz", "/openapi.json"]);
const UI_FILE = /^\/ui\/[^/]+\/[^/]+$/;

const Task = z
  .object({
    task_id: z.string(),
    parent_id: z.string().nullable(),
    status: z.enum(TASK_STATUSES),
    request: z.string().nullable(),
    workflow: z.string(),
    queue: z.string(),
    release_id: z.string().nullable().describe("The release it runs on (keel release show <id>)"),
    attempts: z.number().int(),
    error_reason: z.string().nullable(),
    error: z.string().nullable(),
    final_answer: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Task");
type Task = z.infer<typeof Task>;

const TaskTree = z.object({ task: Task, children: z.array(Task) }).openapi("TaskTree");

const SubmitBody = z
  .object({
    request: z.string().min(1).describe("What to do, in plain words"),
    workflow: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)
      .optional()
      .describe("The workflow the task counts toward (SLO targets per workflow)"),
    max_retries: z.number().int().min(0).max(20).optional().describe("Retries of a failed attempt"),
    release: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe(
        "The release to run it on: NAME (its latest version), NAME@VERSION or id; default: the worker's configuration",
      ),
  })
  .strict()
  .openapi("SubmitTask");

function taskOf(row: TaskRow): Task {
  return {
    task_id: row.id,
    parent_id: row.parent_id,
    status: row.status,
    request: row.request,
    workflow: row.workflow,
    queue: row.queue,
    release_id: row.release_id,
    attempts: row.attempts,
    error_reason: row.error_reason,
    error: row.last_error,
    final_answer: row.final_answer,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

/**
 * Keel's HTTP API: health, the task API (submit with an Idempotency-Key, read, list, cancel) and its OpenAPI
 * document, generated from the same zod schemas that validate the requests.
 */
export function createApp(deps: ServerDeps): OpenAPIHono<Vars> {
  // Without keys, every caller is the local user, as admin; the server is on loopback then (keel serve checks).
  const local: Caller = { identity: deps.config.user, role: "admin", keyId: null };
  // Keys being submitted by this process right now: a second request with one of them is answered 409.
  const inFlight = new Set<string>();
  const limiter =
    deps.config.server.rateLimitPerMinute > 0
      ? new RateLimiterPostgres({
          storeClient: deps.pool,
          storeType: "pool",
          tableName: "rate_limits",
          tableCreated: true,
          keyPrefix: "api",
          points: deps.config.server.rateLimitPerMinute,
          duration: 60,
        })
      : undefined;
  /** A task the caller may see: a submitter sees only its own requests; another's is "not found", as if absent. */
  const visibleTask = async (c: Context<Vars>, id: string): Promise<TaskRow> => {
    const task = await getTask(deps.pool, id);
    const root = task.parent_id ? await getTask(deps.pool, task.root_id) : task;
    const caller = c.get("caller");
    if (caller.role === "submitter" && root.submitted_by !== caller.identity)
      throw new NotFoundError(`No task has id ${task.id}. GET /tasks lists your tasks.`);
    return root;
  };
  const app = new OpenAPIHono<Vars>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({
        path: i.path.join(".") || "(body)",
        message: i.message,
      }));
      return fail(
        c,
        422,
        "validation_error",
        `The request is not valid: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}.`,
        { issues },
      );
    },
  });
  app.use("*", requestId());
  if (deps.config.server.corsOrigins.length > 0)
    app.use(
      "*",
      cors({
        origin: deps.config.server.corsOrigins,
        allowHeaders: ["Authorization", "X-Api-Key", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        exposeHeaders: ["X-Request-Id", "Retry-After", "Content-Location", "Location"],
        maxAge: 600,
      }),
    );
  // Who is calling: a key in `Authorization: Bearer` or `x-api-key`, checked on every route but the public ones.
  app.use("*", async (c, next) => {
    // A page's script tags load UI bundles without a key.
    if (
      PUBLIC.has(c.req.path) ||
      c.req.method === "OPTIONS" ||
      (c.req.method === "GET" && UI_FILE.test(c.req.path))
    )
      return next();
    const bearer = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    const secret = bearer ?? c.req.header("x-api-key");
    let caller: Caller | null;
    if (secret) {
      caller = await authenticate(deps.pool, secret);
      if (!caller)
        throw new Refused(
          401,
          "unauthenticated",
          "That API key is not valid (unknown or revoked); ask an admin for one with keel keys create.",
        );
    } else if (deps.requireKeys || (await activeKeyCount(deps.pool)) > 0) {
      throw new Refused(
        401,
        "unauthenticated",
        "This server needs an API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`; an admin makes one with keel keys create.",
      );
    } else caller = local;
    c.set("caller", caller);
    if (limiter) {
      try {
        await limiter.consume(caller.keyId ?? "local");
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error;
        const seconds = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
        throw new Refused(
          429,
          "rate_limited",
          `This key made more than ${deps.config.server.rateLimitPerMinute} requests in a minute; retry in ${seconds} s.`,
          seconds,
        );
      }
    }
    return next();
  });
  // Every request is answered within the request timeout.
  const timeLimit = timeout(
    deps.config.server.requestTimeoutMs,
    () =>
      new HTTPException(504, {
        message: `The request took longer than ${deps.config.server.requestTimeoutMs} ms`,
      }),
  );
  // A stream's response is returned at once, its body written afterwards: the time limit does not cut it.
  app.use("*", timeLimit);
  app.use(
    "*",
    bodyLimit({
      maxSize: 256 * 1024,
      onError: (c) =>
        fail(c, 422, "validation_error", "The body is larger than 256 KiB; send a shorter request."),
    }),
  );
  app.onError((error, c) => {
    if (error instanceof Refused) {
      if (error.retryAfterSeconds) c.header("Retry-After", String(error.retryAfterSeconds));
      return fail(c, error.status, error.code, error.message);
    }
    if (isKeelError(error)) return fail(c, statusFor(error), error.code, error.message);
    if (error instanceof HTTPException && error.status === 504)
      return fail(
        c,
        504,
        "timeout",
        `${error.message}; it may still finish: read the task before retrying (or retry with the same Idempotency-Key).`,
      );
    if (error instanceof HTTPException && error.status < 500)
      return fail(
        c,
        error.status === 413 ? 422 : 400,
        "invalid_request",
        `${error.message}; send a JSON object as the body.`,
      );
    if (error instanceof SyntaxError)
      return fail(c, 400, "invalid_request", `The body is not JSON (${error.message}); send a JSON object.`);
    console.error(`keel serve: ${c.req.method} ${c.req.path} failed:`, error);
    return fail(
      c,
      500,
      "internal",
      `The server failed (${error.message}); the request id names it in the log.`,
    );
  });
  app.notFound((c) =>
    fail(c, 404, "not_found", `There is no ${c.req.method} ${c.req.path}. /openapi.json lists every route.`),
  );
  // The project's own routes and middleware go in front of the API's, as LangGraph's servers mount them: its
  // middleware sees every request after Keel's (request id, CORS, keys, limits), and its routes come first.
  if (deps.httpApp) app.route("/", deps.httpApp);

  app.openapi(
    createRoute({
      method: "get",
      path: "/ok",
      summary: "Liveness, as the LangGraph Agent Server answers it",
      responses: {
        200: {
          description: "Alive",
          content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
        },
      },
    }),
    (c) => c.json({ ok: true as const }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/info",
      summary: "What this server is and which optional parts it offers",
      responses: {
        200: {
          description: "Server information",
          content: {
            "application/json": {
              schema: z.object({
                version: z.string(),
                server: z.literal("keel"),
                flags: z.object({ assistants: z.boolean(), crons: z.boolean() }),
              }),
            },
          },
        },
      },
    }),
    (c) =>
      c.json(
        {
          version: deps.version,
          server: "keel" as const,
          flags: { assistants: deps.graphs !== undefined, crons: deps.graphs !== undefined },
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/healthz",
      summary: "The process is up",
      responses: {
        200: {
          description: "Up",
          content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
        },
      },
    }),
    (c) => c.json({ status: "ok" as const }, 200),
  );

  const Ready = z.object({
    ready: z.boolean(),
    checks: z.object({ database: z.boolean(), migrations: z.boolean(), worker: z.boolean() }),
    storage: z
      .object({
        checkpoint_bytes: z
          .number()
          .describe("The checkpoint tables' size on disk, with indexes (the retention policy bounds it)"),
      })
      .optional(),
  });
  app.openapi(
    createRoute({
      method: "get",
      path: "/readyz",
      summary:
        "Ready for work: the database answers, its tables exist, and a worker runs here (unless --no-worker)",
      responses: {
        200: { description: "Ready", content: { "application/json": { schema: Ready } } },
        503: { description: "Not ready", content: { "application/json": { schema: Ready } } },
      },
    }),
    async (c) => {
      const database = await deps.pool.query("select 1").then(
        () => true,
        () => false,
      );
      // Every migration this build knows is applied (a node older than the database is fine; newer is not).
      const migrations = database && (await migrationsApplied(deps.pool));
      const storage = migrations
        ? await checkpointBytes(deps.pool).then(
            (bytes) => ({ checkpoint_bytes: bytes }),
            () => undefined,
          )
        : undefined;
      const worker = deps.workerRunning();
      const checks = { database, migrations, worker };
      // An API-only node (--no-worker) is ready without a worker: the workers run elsewhere.
      // A stopping server is not ready, so a load balancer sends new work to another node.
      const ready = database && migrations && !deps.stopping?.aborted;
      return c.json({ ready, checks, ...(storage ? { storage } : {}) }, ready ? 200 : 503);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/tasks",
      summary: "Submit a request as a task",
      description:
        "With an Idempotency-Key header, the same key and body return the same task (200); the same key while the first request with it is still being handled is 409; the same key with another body is 422.",
      request: {
        headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
        body: { content: { "application/json": { schema: SubmitBody } }, required: true },
      },
      responses: {
        201: { description: "Created", content: { "application/json": { schema: Task } } },
        200: {
          description: "The task this key made before",
          content: { "application/json": { schema: Task } },
        },
        ...errors,
      },
    }),
    async (c) => {
      const caller = allow(c, ["submitter", "admin"], "submit tasks");
      const body = c.req.valid("json");
      const key = c.req.valid("header")["idempotency-key"];
      if (key && inFlight.has(key))
        return fail(
          c,
          409,
          "conflict",
          `A request with Idempotency-Key "${key}" is still being handled; retry later.`,
        );
      if (key) inFlight.add(key);
      try {
        const release = body.release ? await getRelease(deps.pool, body.release) : undefined;
        const scope = release?.spec.policy.scope ?? deps.policy.scope;
        const { task, created } = await submitRequest(deps.pool, deps.config, scope, {
          request: body.request,
          releaseId: release?.id,
          workflow: body.workflow,
          maxRetries: body.max_retries,
          idempotencyKey: key,
          submittedBy: caller.identity,
        });
        return c.json(taskOf(task), created ? 201 : 200);
      } catch (error) {
        // A key reused for another request is the draft's 422, not a generic conflict.
        if (key && isKeelError(error) && error.code === "conflict" && error instanceof InputError)
          return fail(c, 422, "conflict", error.message);
        throw error;
      } finally {
        if (key) inFlight.delete(key);
      }
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/tasks",
      summary: "Tasks, newest first",
      request: {
        query: z.object({
          status: z.enum(TASK_STATUSES).optional(),
          limit: z.coerce.number().int().min(1).max(500).optional(),
        }),
      },
      responses: {
        200: {
          description: "Tasks",
          content: { "application/json": { schema: z.object({ tasks: z.array(Task) }) } },
        },
        422: errors[422],
      },
    }),
    async (c) => {
      const { status, limit } = c.req.valid("query");
      const caller = c.get("caller");
      const rows = await listTasks(deps.pool, {
        status,
        limit: limit ?? 100,
        submittedBy: caller.role === "submitter" ? caller.identity : undefined,
      });
      return c.json({ tasks: rows.map(taskOf) }, 200);
    },
  );

  const IdParam = z.object({
    id: z
      .string()
      .min(8)
      .max(64)
      .openapi({ param: { name: "id", in: "path" } }),
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/tasks/{id}",
      summary: "A task and its AgentTask children",
      request: { params: IdParam },
      responses: {
        200: { description: "The task tree", content: { "application/json": { schema: TaskTree } } },
        404: errors[404],
        409: errors[409],
        422: errors[422],
      },
    }),
    async (c) => {
      const root = await visibleTask(c, c.req.valid("param").id);
      const tree = await getTree(deps.pool, root.root_id);
      const [task, ...children] = tree.map(taskOf);
      if (!task) throw new NotFoundError(`No task has id ${root.id}.`);
      return c.json({ task, children }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/tasks/{id}/cancel",
      summary:
        "Cancel a task tree: running work stops, pending approvals are withdrawn, committed effects undone",
      request: { params: IdParam },
      responses: {
        200: {
          description: "Cancelled",
          content: { "application/json": { schema: z.object({ task: Task, cancelled: z.number().int() }) } },
        },
        404: errors[404],
        409: errors[409],
        422: errors[422],
      },
    }),
    async (c) => {
      const caller = allow(c, ["submitter", "admin"], "cancel tasks");
      const task = await visibleTask(c, c.req.valid("param").id);
      const { root, cancelled } = await cancelTree(deps.pool, task.id, `cancelled by ${caller.identity}`);
      return c.json({ task: taskOf(root), cancelled }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/tasks/{id}/retry",
      summary: "Queue a failed request again; it continues from its last checkpoint",
      request: { params: IdParam },
      responses: {
        200: { description: "Queued again", content: { "application/json": { schema: Task } } },
        ...errors,
      },
    }),
    async (c) => {
      allow(c, ["submitter", "admin"], "retry tasks");
      const task = await visibleTask(c, c.req.valid("param").id);
      return c.json(taskOf(await retryTask(deps.pool, task.id)), 200);
    },
  );

  const Approval = z
    .object({
      approval_id: z.string(),
      task_id: z.string(),
      status: z.enum(["pending", "approved", "rejected", "expired", "withdrawn"]),
      mode: z
        .enum(["async", "sync"])
        .describe("sync: a person other than the submitter, with the typed confirmation"),
      confirm: z.string().nullable().describe("For a sync approval: the text to send as `confirm`"),
      context: z
        .record(z.string(), z.unknown())
        .describe("What the reviewer decides on (personal data redacted)"),
      reviewer: z.string().nullable(),
      created_at: z.string(),
      expires_at: z.string(),
    })
    .openapi("Approval");
  const approvalOf = (a: ApprovalRow) => ({
    approval_id: a.id,
    task_id: a.task_id,
    status: a.status,
    mode: a.mode,
    confirm: a.context.confirm ?? null,
    context: a.context as unknown as Record<string, unknown>,
    reviewer: a.reviewer,
    created_at: new Date(a.created_at).toISOString(),
    expires_at: new Date(a.expires_at).toISOString(),
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/approvals",
      summary: "Approvals, pending ones by default",
      request: {
        query: z.object({
          status: z.enum(["pending", "approved", "rejected", "expired", "withdrawn", "all"]).optional(),
        }),
      },
      responses: {
        200: {
          description: "Approvals",
          content: { "application/json": { schema: z.object({ approvals: z.array(Approval) }) } },
        },
        422: errors[422],
      },
    }),
    async (c) => {
      allow(c, ["reviewer", "admin"], "read approvals");
      const rows = await listApprovals(deps.pool, c.req.valid("query").status ?? "pending");
      return c.json({ approvals: rows.map(approvalOf) }, 200);
    },
  );

  const Decide = z
    .object({
      reason: z.string().max(2000).optional().describe("Why; an agent whose action was rejected is told"),
      confirm: z.string().optional().describe("For a sync approval: the approval's `confirm` text"),
      args: z
        .record(z.string(), z.unknown())
        .optional()
        .describe("Approve with these arguments changed; the edit is decided by the policy again"),
    })
    .strict();
  for (const action of ["approve", "reject"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/approvals/{id}/${action}`,
        summary:
          action === "approve"
            ? "Approve a held action (with `args`: approve it edited); the run resumes once every approval of the task is decided"
            : "Reject a held action; the agent is told why",
        request: {
          params: IdParam,
          body: { content: { "application/json": { schema: Decide } }, required: false },
        },
        responses: {
          200: {
            description: "Decided (or, for an edit that needs a second person, held for one)",
            content: { "application/json": { schema: Approval } },
          },
          ...errors,
        },
      }),
      async (c) => {
        const { identity } = allow(c, ["reviewer", "admin"], "decide approvals");
        const body = c.req.valid("json") ?? {};
        const decision =
          action === "reject"
            ? { action: "reject" as const, reason: body.reason, reviewer: identity }
            : body.args
              ? { action: "edit" as const, args: body.args, reason: body.reason, reviewer: identity }
              : { action: "approve" as const, reason: body.reason, reviewer: identity };
        const row = await decide(deps.pool, c.req.valid("param").id, decision, {
          confirm: body.confirm,
          policy: deps.policy,
        });
        return c.json(approvalOf(row), 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/tasks/{id}/trace",
      summary:
        "A task's whole story: steps, status changes, policy decisions, guardrail verdicts (as keel trace --json)",
      request: { params: IdParam },
      responses: {
        200: {
          description: "The trace",
          content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
        },
        404: errors[404],
        409: errors[409],
        422: errors[422],
      },
    }),
    async (c) => {
      await visibleTask(c, c.req.valid("param").id);
      const trace = await readTaskTrace(deps.pool, c.req.valid("param").id);
      return c.json(trace as unknown as Record<string, unknown>, 200);
    },
  );

  // A task's status changes as server-sent events: `status` per change (its id is the event's, so a client that
  // reconnects with Last-Event-ID gets what it missed), then `end` once the whole tree has ended.
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/tasks/{id}/events",
    summary: "Follow a task tree's status changes (server-sent events; Last-Event-ID resumes)",
    request: { params: IdParam },
    responses: {
      200: {
        description:
          "`status` events, then one `end`; a server that is stopping sends `reconnect` instead (reconnect with Last-Event-ID)",
        content: { "text/event-stream": { schema: z.string() } },
      },
      404: errors[404],
    },
  });
  app.get("/tasks/:id/events", async (c) => {
    const root = await visibleTask(c, c.req.param("id"));
    const from = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
    if (!/^\d{1,18}$/.test(from))
      return fail(c, 422, "validation_error", `Last-Event-ID must be an event id (digits), not "${from}".`);
    return streamSSE(c, async (stream) => {
      let last = from;
      // The root's status as the stream has seen it: its row when the stream opens, then its events.
      let status = (await getTask(deps.pool, root.root_id)).status;
      while (!stream.aborted) {
        if (deps.stopping?.aborted) {
          // Handing over: the client reconnects (EventSource does by itself, after `retry` ms) with Last-Event-ID,
          // to another node or to this one restarted, and misses nothing.
          await stream.writeSSE({
            event: "reconnect",
            data: JSON.stringify({ reason: "the server is stopping", last_event_id: last }),
            retry: 1000,
          });
          return;
        }
        const { rows } = await deps.pool.query<{ id: string; task_id: string; to_status: TaskRow["status"] }>(
          `select e.id::text as id, e.task_id, e.from_status, e.to_status, e.reason, e.attempt, e.at
             from task_events e join tasks t on t.id = e.task_id
            where t.root_id = $1 and e.id > $2::bigint order by e.id`,
          [root.root_id, last],
        );
        for (const row of rows) {
          await stream.writeSSE({ id: row.id, event: "status", data: JSON.stringify(row) });
          last = row.id;
          if (row.task_id === root.root_id) status = row.to_status;
        }
        if (rows.length === 0 && ["done", "failed", "cancelled"].includes(status)) {
          await stream.writeSSE({ event: "end", data: JSON.stringify({ task_id: root.root_id, status }) });
          return;
        }
        await stream.sleep(250);
      }
    });
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/slo",
      summary:
        "The service-level scorecard over a window (as keel slo --json), for dashboards and automated analysis",
      request: {
        query: z.object({
          hours: z.coerce
            .number()
            .positive()
            .max(24 * 366)
            .optional()
            .describe("The window, ending now; default 24"),
          workflow: z.string().min(1).max(63).optional().describe("One workflow's tasks and targets"),
          release: z
            .string()
            .min(1)
            .max(100)
            .optional()
            .describe("Only the tasks of one release: NAME, NAME@VERSION or id"),
        }),
      },
      responses: {
        200: {
          description: "The scorecard",
          content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
        },
        422: errors[422],
      },
    }),
    async (c) => {
      const { hours, workflow, release: ref } = c.req.valid("query");
      const since = new Date(Date.now() - (hours ?? 24) * 3600_000);
      const release = ref ? await getRelease(deps.pool, ref) : undefined;
      const report = await computeSlo(deps.pool, targetsFor(deps.policy.slo, workflow), {
        since,
        workflow,
        release: release ? { id: release.id, label: releaseLabel(release) } : undefined,
      });
      return c.json(report as unknown as Record<string, unknown>, 200);
    },
  );

  if (deps.graphs) assistantRoutes(app, deps.pool, deps.graphs);
  threadRoutes(app, deps.pool, deps.graphs);
  if (deps.graphs) stateRoutes(app, deps.pool, deps.graphs);
  if (deps.graphs) cronRoutes(app, deps.pool, deps.graphs);
  if (deps.config.server.testEndpoints) internalRoutes(app, deps.pool, deps.store);
  if (deps.graphs && deps.streams)
    runRoutes(app, {
      pool: deps.pool,
      config: deps.config,
      policy: deps.policy,
      graphs: deps.graphs,
      streams: deps.streams,
      stopping: deps.stopping,
    });
  if (deps.store) storeRoutes(app, deps.store);
  if (deps.ui?.agents.length) uiRoutes(app, deps.ui);

  const metrics = createMetrics(deps.pool, deps.breakers);
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/metrics",
    summary:
      "Prometheus metrics: requests by status, durations, queue depth, tool calls, pending approvals, breakers (admin)",
    responses: {
      200: { description: "Prometheus text format", content: { "text/plain": { schema: z.string() } } },
      401: errors[401],
      403: errors[403],
    },
  });
  app.get("/metrics", async (c) => {
    allow(c, ["admin"], "read metrics");
    c.header("Content-Type", metrics.contentType);
    return c.body(await metrics.metrics(), 200);
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "apiKey",
    in: "header",
    name: "x-api-key",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    security: [{ bearer: [] }, { apiKey: [] }],
    info: {
      title: "Keel",
      version: deps.version,
      description: `Keel's HTTP API. Failure codes: ${Object.keys(FAILURES).join(", ")}.`,
    },
  });
  return app;
}
