import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { StateSnapshot } from "@langchain/langgraph";
import type { Context } from "hono";
import type pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { InputError } from "../core/errors.js";
import type { GraphRegistry } from "../runtime/registry.js";
import { checkpointOf } from "../runtime/runs/drive.js";
import { serialise } from "../runtime/runs/events.js";
import { copyThread } from "../runtime/runs/store.js";
import { allow, errors, Flag, Json, jsonResponse, ThreadParams, type Vars } from "./http.js";
import { keepThreadState, Thread, threadOf, visibleThread, type ThreadRow } from "./threads.js";

/**
 * A thread's state through its graph (LangGraph's `getState`, `updateState`, `getStateHistory` on the Postgres
 * checkpoints every worker writes), and copying a thread with its checkpoints.
 */

const Checkpoint = z
  .object({
    thread_id: z.string().optional(),
    checkpoint_ns: z.string().optional(),
    checkpoint_id: z.string().optional(),
    checkpoint_map: Json.nullable().optional(),
  })
  .openapi("CheckpointRef");

const ThreadState = z
  .object({
    values: z.unknown(),
    next: z.array(z.string()),
    tasks: z.array(Json),
    metadata: Json.nullable(),
    created_at: z.string().nullable(),
    checkpoint: Checkpoint.nullable(),
    parent_checkpoint: Checkpoint.nullable(),
  })
  .openapi("ThreadState");

const Params = ThreadParams;

/** A LangGraph state snapshot in the Agent Server API's form. */
function stateOf(snapshot: StateSnapshot): z.infer<typeof ThreadState> {
  return {
    values: snapshot.values,
    next: snapshot.next,
    tasks: snapshot.tasks.map((task) => ({
      id: task.id,
      name: task.name,
      error: task.error ? String((task.error as Error).message ?? task.error) : null,
      interrupts: task.interrupts,
      path: task.path,
      // Where the task's subgraph keeps its checkpoints (the subgraph's namespace), as LangGraph's servers show it.
      checkpoint: task.state && "configurable" in task.state ? (task.state.configurable ?? null) : null,
      state: task.state && "values" in task.state ? stateOf(task.state) : null,
      result: task.result ?? null,
    })),
    metadata: (snapshot.metadata as Record<string, unknown> | undefined) ?? null,
    created_at: snapshot.createdAt ?? null,
    checkpoint: checkpointOf(snapshot.config),
    parent_checkpoint: checkpointOf(snapshot.parentConfig),
  };
}

const EMPTY = {
  values: {},
  next: [],
  tasks: [],
  metadata: null,
  created_at: null,
  checkpoint: null,
  parent_checkpoint: null,
};

/** JSON with LangChain messages in their dict form. */
const send = (c: Context, value: unknown) => {
  c.header("Content-Type", "application/json");
  return c.body(serialise(value));
};

export function stateRoutes(app: OpenAPIHono<Vars>, pool: pg.Pool, graphs: GraphRegistry): void {
  /** The thread the caller may see, and its graph (none until a run has used it). */
  const threadGraph = async (c: Context<Vars>, threadId: string) => {
    const thread = await visibleThread(pool, c.get("caller"), threadId);
    const graphId = thread.metadata.graph_id;
    return {
      thread,
      // A graph made per run is made here with the configuration the thread's last run had.
      graph:
        typeof graphId === "string" && graphs.has(graphId)
          ? await graphs.get(graphId, thread.config)
          : undefined,
    };
  };

  const read = async (c: Context<Vars>, threadId: string, checkpoint: object, subgraphs: boolean) => {
    const { graph } = await threadGraph(c, threadId);
    if (!graph) return send(c, EMPTY);
    const snapshot = await graph.getState(
      { configurable: { ...checkpoint, thread_id: threadId } },
      { subgraphs },
    );
    return send(c, stateOf(snapshot));
  };

  const history = async (
    c: Context<Vars>,
    threadId: string,
    options: { limit: number; before?: string; metadata?: Record<string, unknown>; checkpoint?: object },
  ) => {
    const { graph } = await threadGraph(c, threadId);
    if (!graph) return send(c, []);
    const states = [];
    for await (const snapshot of graph.getStateHistory(
      { configurable: { checkpoint_ns: "", ...options.checkpoint, thread_id: threadId } },
      {
        limit: options.limit,
        before: options.before ? { configurable: { checkpoint_id: options.before } } : undefined,
        filter: options.metadata,
      },
    ))
      states.push(stateOf(snapshot));
    return send(c, states);
  };

  const json = jsonResponse;
  const state = json(ThreadState, "The thread's state");

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/state",
      summary: "A thread's latest state",
      request: { params: Params, query: z.object({ subgraphs: Flag.optional() }) },
      responses: { 200: state, ...errors },
    }),
    (c) => read(c, c.req.valid("param").thread_id, {}, c.req.valid("query").subgraphs ?? false) as never,
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/state/{checkpoint_id}",
      summary: "A thread's state at a checkpoint",
      request: {
        params: Params.extend({
          checkpoint_id: z.string().openapi({ param: { name: "checkpoint_id", in: "path" } }),
        }),
        query: z.object({ subgraphs: Flag.optional() }),
      },
      responses: { 200: state, ...errors },
    }),
    (c) => {
      const { thread_id, checkpoint_id } = c.req.valid("param");
      return read(c, thread_id, { checkpoint_id }, c.req.valid("query").subgraphs ?? false) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/state/checkpoint",
      summary: "A thread's state at a checkpoint (given in the body)",
      request: {
        params: Params,
        body: {
          content: {
            "application/json": {
              schema: z.object({
                checkpoint: Checkpoint.nullable().optional(),
                subgraphs: z.boolean().optional(),
              }),
            },
          },
          required: true,
        },
      },
      responses: { 200: state, ...errors },
    }),
    (c) => {
      const body = c.req.valid("json");
      const { thread_id: _ignored, ...checkpoint } = body.checkpoint ?? {};
      return read(c, c.req.valid("param").thread_id, checkpoint, body.subgraphs ?? false) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/state",
      summary: "Write to a thread's state, as a node would (refused while a run is in flight)",
      request: {
        params: Params,
        body: {
          content: {
            "application/json": {
              schema: z
                .object({
                  values: z.unknown().optional(),
                  as_node: z.string().optional(),
                  checkpoint_id: z.string().optional(),
                  checkpoint: Checkpoint.optional(),
                })
                .openapi("ThreadStateUpdate"),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(z.object({ checkpoint: Checkpoint }), "The new checkpoint"), ...errors },
    }),
    async (c) => {
      allow(c, ["submitter", "admin"], "change a thread's state");
      const id = c.req.valid("param").thread_id;
      const body = c.req.valid("json");
      const { thread, graph } = await threadGraph(c, id);
      if (thread.status === "busy")
        throw new InputError(
          `Thread ${id} has a run in flight; wait for it to end, then update its state.`,
          "conflict",
        );
      if (!graph)
        throw new InputError(
          `Thread ${id} has no graph yet: run it once (or give its assistant a run) before writing its state.`,
        );
      const { thread_id: _ignored, ...at } = body.checkpoint ?? {};
      const next = await graph
        .updateState(
          {
            configurable: {
              checkpoint_ns: "",
              ...at,
              ...(body.checkpoint_id ? { checkpoint_id: body.checkpoint_id } : {}),
              thread_id: id,
            },
          },
          body.values,
          body.as_node,
        )
        .catch((error: Error) => {
          // LangGraph refuses an update it cannot apply (a node that does not exist, values it cannot take).
          throw new InputError(`The state update was refused: ${error.message}`);
        });
      await keepThreadState(pool, id, await graph.getState({ configurable: { thread_id: id } }));
      return c.json({ checkpoint: checkpointOf(next) ?? {} }, 200);
    },
  );

  const HistoryQuery = z.object({
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    before: z.string().optional(),
  });
  app.openapi(
    createRoute({
      method: "get",
      path: "/threads/{thread_id}/history",
      summary: "A thread's past states, newest first",
      request: { params: Params, query: HistoryQuery },
      responses: { 200: json(z.array(ThreadState), "States"), ...errors },
    }),
    (c) => {
      const q = c.req.valid("query");
      return history(c, c.req.valid("param").thread_id, { limit: q.limit ?? 10, before: q.before }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/history",
      summary: "A thread's past states, newest first, filtered by metadata",
      request: {
        params: Params,
        body: {
          content: {
            "application/json": {
              schema: z.object({
                limit: z.number().int().min(1).max(1000).optional(),
                before: z.union([z.string(), z.object({ configurable: Json })]).optional(),
                metadata: Json.optional(),
                checkpoint: Checkpoint.optional(),
              }),
            },
          },
          required: false,
        },
      },
      responses: { 200: json(z.array(ThreadState), "States"), ...errors },
    }),
    (c) => {
      const body = c.req.valid("json") ?? {};
      const before =
        typeof body.before === "string" ? body.before : (body.before?.configurable.checkpoint_id as string);
      const { thread_id: _ignored, ...checkpoint } = body.checkpoint ?? {};
      return history(c, c.req.valid("param").thread_id, {
        limit: body.limit ?? 10,
        before,
        metadata: body.metadata,
        checkpoint,
      }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/copy",
      summary: "Copy a thread with its checkpoints (the copy is the caller's)",
      request: { params: Params },
      responses: { 200: json(Thread, "The copy"), ...errors },
    }),
    async (c) => {
      const caller = allow(c, ["submitter", "admin"], "copy threads");
      const from = await visibleThread(pool, caller, c.req.valid("param").thread_id);
      const id = uuidv7();
      const row = await copyThread<ThreadRow>(pool, {
        from: from.thread_id,
        to: id,
        owner: caller.identity,
        metadata: { ...from.metadata, thread_id: id },
      });
      return c.json(threadOf(row), 200);
    },
  );
}
