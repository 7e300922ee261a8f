import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { NotFoundError } from "../core/errors.js";
import type { GraphRegistry } from "../runtime/registry.js";
import {
  checkTimezone,
  CronPayload,
  nextRunDate,
  parseSchedule,
  type CronRow,
} from "../runtime/runs/crons.js";
import { allow, errors, Json, jsonResponse, ThreadParams, UUID, uuidPath, type Vars } from "./http.js";
import { callerOf, prepareRun, RunCreate } from "./runs.js";
import { visibleThread } from "./threads.js";

/**
 * The Agent Server API's crons: a schedule (graphile-worker's crontab syntax, in a time zone) that starts a run
 * on a thread, or a stateless run, at each matching minute. The workers' minute tick fires them (runs/crons.ts).
 */

const CronCreate = RunCreate.extend({
  schedule: z
    .string()
    .min(9)
    .max(200)
    .describe('Five fields: minute hour day month weekday, e.g. "0 9 * * 1"'),
  timezone: z.string().max(64).optional().describe("IANA time zone the schedule is read in (default UTC)"),
  end_time: z.string().datetime({ offset: true }).optional().describe("No firing after this time"),
  enabled: z.boolean().optional(),
  on_run_completed: z
    .enum(["delete", "keep"])
    .optional()
    .describe("A stateless cron's thread after each run"),
}).openapi("CronCreate");

const CronPatch = CronCreate.partial().omit({ assistant_id: true }).openapi("CronPatch");

const Cron = z
  .object({
    cron_id: z.string(),
    assistant_id: z.string(),
    thread_id: z.string().nullable(),
    on_run_completed: z.enum(["delete", "keep"]),
    end_time: z.string().nullable(),
    schedule: z.string(),
    timezone: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
    payload: Json,
    user_id: z.string(),
    next_run_date: z.string().nullable(),
    metadata: Json,
    enabled: z.boolean(),
    last_error: z.string().nullable(),
  })
  .openapi("Cron");
type Cron = z.infer<typeof Cron>;

const cronOf = (row: CronRow): Cron => ({
  cron_id: row.cron_id,
  assistant_id: row.assistant_id,
  thread_id: row.thread_id,
  on_run_completed: row.on_run_completed,
  end_time: row.end_time ? new Date(row.end_time).toISOString() : null,
  schedule: row.schedule,
  timezone: row.timezone,
  created_at: new Date(row.created_at).toISOString(),
  updated_at: new Date(row.updated_at).toISOString(),
  payload: row.payload,
  user_id: row.owner,
  next_run_date: row.enabled
    ? (nextRunDate(row.schedule, row.timezone, new Date(), row.end_time)?.toISOString() ?? null)
    : null,
  metadata: row.metadata,
  enabled: row.enabled,
  last_error: row.last_error,
});

const Search = z
  .object({
    assistant_id: z.string().optional(),
    thread_id: z.string().regex(UUID, "must be a UUID").optional(),
    enabled: z.boolean().optional(),
    metadata: Json.optional(),
    limit: z.number().int().min(1).max(1000).optional(),
    offset: z.number().int().min(0).optional(),
    sort_by: z.enum(["cron_id", "assistant_id", "thread_id", "created_at", "updated_at"]).optional(),
    sort_order: z.enum(["asc", "desc"]).optional(),
    select: z.array(z.string()).optional(),
  })
  .openapi("CronSearch");

const Params = z.object({ cron_id: uuidPath("cron_id") });

export function cronRoutes(app: OpenAPIHono<Vars>, pool: pg.Pool, graphs: GraphRegistry): void {
  const writer = (c: Context<Vars>, what: string) => allow(c, ["submitter", "admin"], what);
  const owner = (c: Context<Vars>) => callerOf(c.get("caller")).ownerFilter;

  const read = async (c: Context<Vars>, id: string): Promise<CronRow> => {
    const { rows } = await pool.query<CronRow>(
      "select * from crons where cron_id = $1 and ($2::text is null or owner = $2)",
      [id, owner(c)],
    );
    if (!rows[0]) throw new NotFoundError(`There is no cron ${id}; POST /runs/crons/search lists yours.`);
    return rows[0];
  };

  /** The stored payload of a cron body: the run it starts, normalised as a run request is. */
  const payloadOf = async (c: Context<Vars>, threadId: string | null, body: z.infer<typeof CronCreate>) => {
    const run = await prepareRun(pool, graphs, callerOf(c.get("caller")), threadId ?? undefined, body, {
      url: c.req.url,
    });
    const payload: CronPayload = {
      kwargs: run.kwargs,
      metadata: run.metadata,
      multitask: run.multitask,
      request: run.request,
    };
    return { payload, assistantId: run.assistant.assistant_id };
  };

  const create = async (c: Context<Vars>, threadId: string | null, body: z.infer<typeof CronCreate>) => {
    const caller = writer(c, "create crons");
    parseSchedule(body.schedule);
    const timezone = checkTimezone(body.timezone ?? "UTC");
    if (threadId) await visibleThread(pool, caller, threadId);
    const { payload, assistantId } = await payloadOf(c, threadId, body);
    const { rows } = await pool.query<CronRow>(
      `insert into crons (cron_id, assistant_id, thread_id, owner, schedule, timezone, end_time, payload, metadata,
          enabled, on_run_completed)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning *`,
      [
        uuidv7(),
        assistantId,
        threadId,
        caller.identity,
        body.schedule,
        timezone,
        body.end_time ?? null,
        JSON.stringify(payload),
        body.metadata ?? {},
        body.enabled ?? true,
        body.on_run_completed ?? "delete",
      ],
    );
    return c.json(cronOf(rows[0]!), 200);
  };

  const json = jsonResponse;
  const body = { content: { "application/json": { schema: CronCreate } }, required: true };

  app.openapi(
    createRoute({
      method: "post",
      path: "/runs/crons",
      summary: "Create a cron that starts a stateless run at each matching minute",
      request: { body },
      responses: { 200: json(Cron, "The cron"), ...errors },
    }),
    async (c) => create(c, null, c.req.valid("json")),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/threads/{thread_id}/runs/crons",
      summary: "Create a cron that starts a run on this thread at each matching minute",
      request: {
        params: ThreadParams,
        body,
      },
      responses: { 200: json(Cron, "The cron"), ...errors },
    }),
    async (c) => create(c, c.req.valid("param").thread_id.toLowerCase(), c.req.valid("json")),
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/runs/crons/{cron_id}",
      summary: "Change a cron's schedule, run or switch it on or off",
      request: {
        params: Params,
        body: { content: { "application/json": { schema: CronPatch } }, required: true },
      },
      responses: { 200: json(Cron, "The cron"), ...errors },
    }),
    async (c) => {
      writer(c, "change crons");
      const cron = await read(c, c.req.valid("param").cron_id);
      const patch = c.req.valid("json");
      if (patch.schedule) parseSchedule(patch.schedule);
      const timezone = patch.timezone ? checkTimezone(patch.timezone) : cron.timezone;
      const runChanged = Object.keys(patch).some(
        (k) => !["schedule", "timezone", "end_time", "enabled", "on_run_completed", "metadata"].includes(k),
      );
      const payload = runChanged
        ? (
            await payloadOf(c, cron.thread_id, {
              ...(cron.payload.kwargs as object),
              ...patch,
              assistant_id: cron.assistant_id,
            } as z.infer<typeof CronCreate>)
          ).payload
        : cron.payload;
      const { rows } = await pool.query<CronRow>(
        `update crons set schedule = $2, timezone = $3, end_time = $4, enabled = $5, on_run_completed = $6,
            metadata = metadata || $7::jsonb, payload = $8, updated_at = now()
          where cron_id = $1 returning *`,
        [
          cron.cron_id,
          patch.schedule ?? cron.schedule,
          timezone,
          patch.end_time ?? cron.end_time,
          patch.enabled ?? cron.enabled,
          patch.on_run_completed ?? cron.on_run_completed,
          JSON.stringify(patch.metadata ?? {}),
          JSON.stringify(payload),
        ],
      );
      return c.json(cronOf(rows[0]!), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/runs/crons/{cron_id}",
      summary: "Delete a cron (runs it started stay)",
      request: { params: Params },
      responses: { 204: { description: "Deleted" }, ...errors },
    }),
    async (c) => {
      writer(c, "delete crons");
      const cron = await read(c, c.req.valid("param").cron_id);
      await pool.query("delete from crons where cron_id = $1", [cron.cron_id]);
      return c.body(null, 204);
    },
  );

  const WHERE = `($1::uuid is null or assistant_id = $1) and ($2::uuid is null or thread_id = $2)
    and ($3::boolean is null or enabled = $3) and ($4::jsonb is null or metadata @> $4::jsonb)
    and ($5::text is null or owner = $5)`;
  const filters = async (c: Context<Vars>, body: z.infer<typeof Search>) => [
    body.assistant_id
      ? ((await pool
          .query<{ assistant_id: string }>(
            "select assistant_id from assistants where assistant_id::text = $1 or graph_id = $1 limit 1",
            [body.assistant_id],
          )
          .then((r) => r.rows[0]?.assistant_id)) ?? "00000000-0000-0000-0000-000000000000")
      : null,
    body.thread_id ?? null,
    body.enabled ?? null,
    body.metadata ? JSON.stringify(body.metadata) : null,
    owner(c),
  ];

  app.openapi(
    createRoute({
      method: "post",
      path: "/runs/crons/search",
      summary: "Search crons by assistant, thread, metadata and whether they are on",
      request: { body: { content: { "application/json": { schema: Search } }, required: false } },
      responses: { 200: json(z.array(Cron.partial()), "Crons"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const { rows } = await pool.query<CronRow>(
        `select * from crons where ${WHERE}
          order by ${body.sort_by ?? "created_at"} ${body.sort_order === "asc" ? "asc" : "desc"}, cron_id
          limit $6 offset $7`,
        [...(await filters(c, body)), body.limit ?? 10, body.offset ?? 0],
      );
      const select = body.select;
      return c.json(
        rows.map((row) => {
          const cron = cronOf(row);
          return select ? Object.fromEntries(Object.entries(cron).filter(([k]) => select.includes(k))) : cron;
        }),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/runs/crons/count",
      summary: "Count crons by assistant, thread and metadata",
      request: { body: { content: { "application/json": { schema: Search } }, required: false } },
      responses: { 200: json(z.number().int(), "How many"), ...errors },
    }),
    async (c) => {
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from crons where ${WHERE}`,
        await filters(c, c.req.valid("json") ?? {}),
      );
      return c.json(rows[0]!.n, 200);
    },
  );
}
