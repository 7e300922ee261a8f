import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { InputError, NotFoundError } from "../core/errors.js";
import type { GraphRegistry } from "../runtime/registry.js";
import { commandOf } from "../runtime/runs/drive.js";
import { serialise } from "../runtime/runs/events.js";
import { RunCommand } from "../runtime/runs/sql.js";
import { inTransaction } from "../runtime/task/store.js";
import type { Caller } from "./access.js";
import { allow, errors, Json, jsonResponse, page, ThreadParams, UUID, type Vars } from "./http.js";

/**
 * The Agent Server API's threads, on Postgres. A thread belongs to the identity that made it: a submitter sees
 * and changes only its own (another's is "not found", as if absent); reviewers read any; admins do anything.
 */

const STATUSES = ["idle", "busy", "interrupted", "error"] as const;

export const Thread = z
  .object({
    thread_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
    metadata: Json,
    status: z.enum(STATUSES),
    config: Json,
    values: z.unknown().nullable(),
    interrupts: Json,
  })
  .openapi("Thread");
type Thread = z.infer<typeof Thread>;

export interface ThreadRow {
  thread_id: string;
  owner: string;
  metadata: Record<string, unknown>;
  status: (typeof STATUSES)[number];
  config: Record<string, unknown>;
  values: unknown;
  interrupts: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  /** A stateless run's thread is removed at this time. */
  expires_at: Date | null;
  /** The nodes its state would run next. */
  pending_nodes: string[];
}

export const threadOf = ({
  owner: _owner,
  expires_at: _expires,
  pending_nodes: _next,
  ...row
}: ThreadRow): Thread => ({
  ...row,
  created_at: new Date(row.created_at).toISOString(),
  updated_at: new Date(row.updated_at).toISOString(),
});

const Create = z
  .object({
    thread_id: z.string().regex(UUID, "must be a UUID").optional(),
    metadata: Json.optional(),
    if_exists: z.enum(["raise", "do_nothing"]).optional().describe("raise (409, the default) or do_nothing"),
    supersteps: z
      .array(
        z.object({
          updates: z
            .array(
              z.object({
                values: z.unknown().optional(),
                command: RunCommand.optional(),
                as_node: z.string().min(1),
              }),
            )
            .min(1),
        }),
      )
      .max(1000)
      .optional()
      .describe(
        "State updates to seed the new thread with, one checkpoint per superstep (as `updateState` writes them); needs metadata.graph_id",
      ),
  })
  .openapi("ThreadCreate");
type Superstep = NonNullable<z.infer<typeof Create>["supersteps"]>[number];

const SORTABLE = ["thread_id", "status", "created_at", "updated_at"] as const;
const Filter = z.object({
  metadata: Json.optional().describe("Threads whose metadata contains this"),
  values: Json.optional().describe("Threads whose latest values contain this"),
  status: z.enum(STATUSES).optional(),
});
const Search = Filter.extend({
  ids: z.array(z.string().regex(UUID, "must be a UUID")).max(1000).optional(),
  limit: z.number().int().min(1).max(1000).optional(),
  offset: z.number().int().min(0).optional(),
  sort_by: z.enum(SORTABLE).optional(),
  sort_order: z.enum(["asc", "desc"]).optional(),
  select: z.array(z.enum(Thread.keyof().options)).optional(),
}).openapi("ThreadSearch");

const Params = ThreadParams;

const json = jsonResponse;

/** Whose threads a caller sees: a submitter its own; anyone else every thread (null). */
const ownerFilter = (caller: Caller) => (caller.role === "submitter" ? caller.identity : null);

/** Reads a thread the caller may see; another submitter's is "not found". */
export async function visibleThread(
  db: pg.Pool | pg.PoolClient,
  caller: Caller,
  threadId: string,
  lock = false,
): Promise<ThreadRow> {
  const { rows } = await db.query<ThreadRow>(
    `select * from threads where thread_id = $1 and ($2::text is null or owner = $2)${lock ? " for update" : ""}`,
    [threadId, ownerFilter(caller)],
  );
  if (!rows[0]) throw new NotFoundError(`There is no thread ${threadId}; POST /threads/search lists yours.`);
  return rows[0];
}

/**
 * Keeps a thread's row in step with its state after a write outside a run (a state update, supersteps): its values
 * and the nodes it would run next.
 */
export async function keepThreadState(
  db: pg.Pool,
  threadId: string,
  state: { values: unknown; next: readonly string[] },
): Promise<ThreadRow> {
  const { rows } = await db.query<ThreadRow>(
    `update threads set "values" = $2::jsonb, pending_nodes = $3, updated_at = now() where thread_id = $1 returning *`,
    [threadId, serialise(state.values ?? null), [...state.next]],
  );
  return rows[0]!;
}

/** The Agent Server API's `/threads` routes (their state is in state.ts, their runs in runs.ts). */
export function threadRoutes(app: OpenAPIHono<Vars>, db: pg.Pool, graphs?: GraphRegistry): void {
  const writer = (c: Context<Vars>, what: string) => allow(c, ["submitter", "admin"], what);

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads",
      summary: "Create a thread",
      request: { body: { content: { "application/json": { schema: Create } }, required: false } },
      responses: { 200: json(Thread, "The thread"), ...errors },
    }),
    async (c) => {
      const caller = writer(c, "create threads");
      const body = c.req.valid("json") ?? {};
      const steps = body.supersteps?.length ? body.supersteps : undefined;
      const graphId = body.metadata?.graph_id;
      if (steps && (typeof graphId !== "string" || !graphs?.has(graphId)))
        throw new InputError(
          `A thread created with supersteps needs the graph that writes them: give metadata.graph_id (graphId in the SDK) as one of ${graphs?.ids().join(", ") ?? "the graphs served"}.`,
        );
      const id = (body.thread_id ?? uuidv7()).toLowerCase();
      const { rows } = await db.query<ThreadRow>(
        "insert into threads (thread_id, owner, metadata) values ($1, $2, $3) on conflict do nothing returning *",
        [id, caller.identity, body.metadata ?? {}],
      );
      if (rows[0] && steps) return c.json(threadOf(await seed(rows[0], graphId as string, steps)), 200);
      if (rows[0]) return c.json(threadOf(rows[0]), 200);
      if (steps)
        throw new InputError(
          `Thread ${id} already exists; supersteps seed a new thread only: create one with another id.`,
          "conflict",
        );
      // It exists. Another submitter's thread is not revealed: it is a conflict either way, never a read.
      const mine = await visibleThread(db, caller, id).catch(() => undefined);
      if (mine && body.if_exists === "do_nothing") return c.json(threadOf(mine), 200);
      throw new InputError(
        `Thread ${id} already exists; use it, or send "if_exists": "do_nothing" to get it back.`,
        "conflict",
      );
    },
  );

  /**
   * Writes the supersteps to a thread just made, each as one checkpoint (LangGraph's `bulkUpdateState`), and keeps
   * its values and next nodes on the thread. Updates the graph refuses remove the thread again: nothing is left
   * half-made.
   */
  const seed = async (thread: ThreadRow, graphId: string, steps: Superstep[]): Promise<ThreadRow> => {
    const id = thread.thread_id;
    try {
      const graph = await graphs!.get(graphId, { configurable: {} });
      await graph
        .bulkUpdateState(
          { configurable: { thread_id: id, checkpoint_ns: "" } },
          steps.map((step) => ({
            updates: step.updates.map((u) => ({
              values: u.command ? commandOf(u.command) : u.values,
              asNode: u.as_node,
            })),
          })),
        )
        .catch((error: Error) => {
          // LangGraph refuses updates it cannot apply (a node that does not exist, values it cannot take).
          throw new InputError(
            `The supersteps were refused, and thread ${id} was not created: ${error.message}`,
          );
        });
      return await keepThreadState(db, id, await graph.getState({ configurable: { thread_id: id } }));
    } catch (error) {
      await removeThread(id);
      throw error;
    }
  };

  /** A thread and its checkpoints (its runs and their events go with it, by cascade). */
  const removeThread = (id: string) =>
    inTransaction(db, async (client) => {
      await client.query("delete from threads where thread_id = $1", [id]);
      for (const table of ["checkpoints", "checkpoint_blobs", "checkpoint_writes"])
        await client.query(`delete from ${table} where thread_id = $1`, [id]);
    });

  const filters = (caller: Caller, body: z.infer<typeof Filter>) => [
    body.metadata ? JSON.stringify(body.metadata) : null,
    body.values ? JSON.stringify(body.values) : null,
    body.status ?? null,
    ownerFilter(caller),
  ];
  const WHERE = `($1::jsonb is null or metadata @> $1::jsonb) and ($2::jsonb is null or "values" @> $2::jsonb)
    and ($3::text is null or status = $3) and ($4::text is null or owner = $4)`;

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/search",
      summary: "Search threads by ids, metadata, values and status (newest first unless sorted otherwise)",
      request: { body: { content: { "application/json": { schema: Search } }, required: false } },
      responses: { 200: json(z.array(Thread.partial()), "Threads"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const limit = body.limit ?? 10;
      const offset = body.offset ?? 0;
      const { rows } = await db.query<ThreadRow & { total: string }>(
        `select *, count(*) over () as total from threads
          where ${WHERE} and ($5::uuid[] is null or thread_id = any($5::uuid[]))
          order by ${body.sort_by ?? "created_at"} ${body.sort_order === "asc" ? "asc" : "desc"}, thread_id
          limit $6 offset $7`,
        [...filters(c.get("caller"), body), body.ids?.length ? body.ids : null, limit, offset],
      );
      return c.json(page(c, rows, offset, threadOf, body.select), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/count",
      summary: "Count threads by metadata, values and status",
      request: { body: { content: { "application/json": { schema: Filter } }, required: false } },
      responses: { 200: json(z.number().int(), "How many"), ...errors },
    }),
    async (c) => {
      const { rows } = await db.query<{ n: number }>(
        `select count(*)::int as n from threads where ${WHERE}`,
        filters(c.get("caller"), c.req.valid("json") ?? {}),
      );
      return c.json(rows[0]!.n, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}",
      summary: "A thread",
      request: { params: Params },
      responses: { 200: json(Thread, "The thread"), ...errors },
    }),
    async (c) =>
      c.json(threadOf(await visibleThread(db, c.get("caller"), c.req.valid("param").thread_id)), 200),
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/threads/{thread_id}",
      summary: "Merge metadata into a thread's",
      request: {
        params: Params,
        body: {
          content: { "application/json": { schema: z.object({ metadata: Json }).openapi("ThreadPatch") } },
          required: true,
        },
      },
      responses: { 200: json(Thread, "The thread"), ...errors },
    }),
    async (c) => {
      const caller = writer(c, "change threads");
      const id = c.req.valid("param").thread_id;
      await visibleThread(db, caller, id);
      const { rows } = await db.query<ThreadRow>(
        "update threads set metadata = metadata || $2::jsonb, updated_at = now() where thread_id = $1 returning *",
        [id, JSON.stringify(c.req.valid("json").metadata)],
      );
      return c.json(threadOf(rows[0]!), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/threads/{thread_id}",
      summary: "Delete a thread that is not running",
      request: { params: Params },
      responses: { 200: json(z.array(z.string()), "The deleted thread's id"), ...errors },
    }),
    async (c) => {
      const caller = writer(c, "delete threads");
      const id = c.req.valid("param").thread_id;
      const thread = await visibleThread(db, caller, id);
      if (thread.status === "busy")
        throw new InputError(
          `Thread ${id} has a run in progress; cancel the run first, then delete the thread.`,
          "conflict",
        );
      await removeThread(id);
      return c.json([id], 200);
    },
  );
}
