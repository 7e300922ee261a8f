import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type pg from "pg";
import { v4 as uuidv4 } from "uuid";
import { InputError, NotFoundError } from "../core/errors.js";
import { inTransaction } from "../core/transaction.js";
import { assistantIdOf, type GraphRegistry } from "../runtime/registry.js";
import { allow, errors, Json, jsonResponse, page, UUID, type Vars } from "./http.js";
import { withRelease } from "./releases.js";

/**
 * The Agent Server API's assistants, on Postgres: a graph of `langgraph.json` with a configuration. Every change
 * is a new version; `version` is the one in force. keel serve makes one per graph when it starts, with the id
 * LangGraph's servers give it, so `client.assistants.get("orchestrator")` and the graph's uuid both find it.
 */

export const Assistant = z
  .object({
    assistant_id: z.string(),
    graph_id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    config: Json,
    context: Json,
    metadata: Json,
    version: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Assistant");
type Assistant = z.infer<typeof Assistant>;

interface AssistantRow {
  assistant_id: string;
  graph_id: string;
  name: string;
  description: string | null;
  config: Record<string, unknown>;
  context: Record<string, unknown>;
  metadata: Record<string, unknown>;
  version: number;
  created_at: Date;
  updated_at: Date;
}

const assistantOf = (row: AssistantRow): Assistant => ({
  ...row,
  created_at: new Date(row.created_at).toISOString(),
  updated_at: new Date(row.updated_at).toISOString(),
});

/** Makes the assistant of each graph that has none yet; an existing one (and its versions) is left as it is. */
export async function ensureGraphAssistants(
  db: pg.Pool,
  registry: GraphRegistry,
  defaults: Record<string, Record<string, unknown>> = {},
): Promise<void> {
  for (const graphId of registry.ids()) {
    // LANGGRAPH_CONFIG gives a graph's own assistant its configuration and context when it is made.
    const { context = {}, ...config } = defaults[graphId] ?? {};
    await inTransaction(db, async (client) => {
      const { rowCount } = await client.query(
        `insert into assistants (assistant_id, graph_id, name, config, context, metadata)
         values ($1, $2, $2, $3, $4, '{"created_by": "system"}') on conflict do nothing`,
        [assistantIdOf(graphId), graphId, config, context],
      );
      if (rowCount)
        await client.query(
          `insert into assistant_versions (assistant_id, version, graph_id, name, config, context, metadata)
           values ($1, 1, $2, $2, $3, $4, '{"created_by": "system"}')`,
          [assistantIdOf(graphId), graphId, config, context],
        );
    });
  }
}

const VersionRow = Assistant.omit({ updated_at: true }).openapi("AssistantVersion");

const Create = z
  .object({
    assistant_id: z.string().regex(UUID, "must be a UUID").optional(),
    graph_id: z.string().min(1).describe("A graph of langgraph.json"),
    config: Json.optional(),
    context: Json.optional(),
    metadata: Json.optional().describe(
      "Free-form; on an assistant of the orchestrator, `release` (NAME, NAME@VERSION or id) runs its runs on that release",
    ),
    name: z.string().max(200).optional(),
    description: z.string().max(2000).nullable().optional(),
    if_exists: z.enum(["raise", "do_nothing"]).optional().describe("raise (409, the default) or do_nothing"),
  })
  .openapi("AssistantCreate");

const Patch = z
  .object({
    graph_id: z.string().min(1).optional(),
    config: Json.optional(),
    context: Json.optional(),
    metadata: Json.optional().describe(
      "Merged into the assistant's metadata; `release` (NAME, NAME@VERSION or id) names the release its runs run on",
    ),
    name: z.string().max(200).optional(),
    description: z.string().max(2000).nullable().optional(),
  })
  .openapi("AssistantPatch");

const SORTABLE = ["assistant_id", "graph_id", "name", "created_at", "updated_at"] as const;
const Search = z
  .object({
    graph_id: z.string().optional(),
    name: z.string().optional().describe("Part of the name, any case"),
    metadata: Json.optional().describe("Assistants whose metadata contains this"),
    limit: z.number().int().min(1).max(1000).optional(),
    offset: z.number().int().min(0).optional(),
    sort_by: z.enum(SORTABLE).optional(),
    sort_order: z.enum(["asc", "desc"]).optional(),
    select: z.array(z.enum(Assistant.keyof().options)).optional(),
  })
  .openapi("AssistantSearch");

const Params = z.object({
  assistant_id: z
    .string()
    .min(1)
    .max(200)
    .openapi({
      param: { name: "assistant_id", in: "path" },
      description: "The assistant's id, or a graph's id",
    }),
});

const json = jsonResponse;

/**
 * The assistant a run names: by its uuid, or by a graph's id (its graph's own assistant). Unknown is a 404 that
 * names the graphs served.
 */
export async function findAssistant(
  db: pg.Pool | pg.PoolClient,
  registry: GraphRegistry,
  idOrGraph: string,
): Promise<AssistantRow> {
  const id = registry.has(idOrGraph)
    ? assistantIdOf(idOrGraph)
    : UUID.test(idOrGraph)
      ? idOrGraph
      : undefined;
  const { rows } = id
    ? await db.query<AssistantRow>("select * from assistants where assistant_id = $1", [id.toLowerCase()])
    : { rows: [] };
  if (!rows[0])
    throw new NotFoundError(
      `No assistant found for "${idOrGraph}": name one by its uuid or by a graph's id (${registry.ids().join(", ")}).`,
    );
  return rows[0];
}

/** The Agent Server API's `/assistants` routes. Anyone with a key reads them; only an admin changes them. */
export function assistantRoutes(app: OpenAPIHono<Vars>, db: pg.Pool, registry: GraphRegistry): void {
  const mustHaveGraph = (graphId: string) => {
    if (!registry.has(graphId))
      throw new NotFoundError(
        `There is no graph "${graphId}"; the graphs served are ${registry.ids().join(", ")} (from langgraph.json).`,
      );
  };
  /** The uuid an assistant path names: a graph's id stands for its assistant. */
  const idOf = (param: string) => {
    if (registry.has(param)) return assistantIdOf(param);
    if (!UUID.test(param))
      throw new NotFoundError(
        `There is no assistant "${param}": name one by its uuid or by a graph's id (${registry.ids().join(", ")}).`,
      );
    return param.toLowerCase();
  };
  const read = async (client: pg.Pool | pg.PoolClient, id: string, lock = false) => {
    const { rows } = await client.query<AssistantRow>(
      `select * from assistants where assistant_id = $1${lock ? " for update" : ""}`,
      [id],
    );
    if (!rows[0]) throw new NotFoundError(`There is no assistant ${id}; POST /assistants/search lists them.`);
    return rows[0];
  };

  app.openapi(
    createRoute({
      method: "post",
      path: "/assistants",
      summary: "Create an assistant of a graph (version 1)",
      request: { body: { content: { "application/json": { schema: Create } }, required: true } },
      responses: { 200: json(Assistant, "The assistant"), ...errors },
    }),
    async (c) => {
      allow(c, ["admin"], "create assistants");
      const body = c.req.valid("json");
      mustHaveGraph(body.graph_id);
      const id = (body.assistant_id ?? uuidv4()).toLowerCase();
      const metadata = await withRelease(db, registry, body.graph_id, body.metadata, body.metadata ?? {});
      const row = await inTransaction(db, async (client) => {
        const { rows } = await client.query<AssistantRow>(
          `insert into assistants (assistant_id, graph_id, name, description, config, context, metadata)
           values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing returning *`,
          [
            id,
            body.graph_id,
            body.name || body.graph_id,
            body.description ?? null,
            body.config ?? {},
            body.context ?? {},
            metadata,
          ],
        );
        if (!rows[0]) {
          if (body.if_exists === "do_nothing") return read(client, id);
          throw new InputError(
            `Assistant ${id} already exists; PATCH it to change it, or send "if_exists": "do_nothing".`,
            "conflict",
          );
        }
        await client.query(
          `insert into assistant_versions (assistant_id, version, graph_id, name, description, config, context, metadata)
           select assistant_id, 1, graph_id, name, description, config, context, metadata from assistants
            where assistant_id = $1`,
          [id],
        );
        return rows[0];
      });
      return c.json(assistantOf(row), 200);
    },
  );

  const filters = (body: { graph_id?: string; name?: string; metadata?: Record<string, unknown> }) => [
    body.graph_id ?? null,
    body.name ?? null,
    body.metadata ? JSON.stringify(body.metadata) : null,
  ];
  const WHERE = `($1::text is null or graph_id = $1) and ($2::text is null or strpos(lower(name), lower($2)) > 0)
     and ($3::jsonb is null or metadata @> $3::jsonb)`;

  app.openapi(
    createRoute({
      method: "post",
      path: "/assistants/search",
      summary: "Search assistants by graph, name and metadata (newest first unless sorted otherwise)",
      request: { body: { content: { "application/json": { schema: Search } }, required: false } },
      responses: { 200: json(z.array(Assistant.partial()), "Assistants"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const limit = body.limit ?? 10;
      const offset = body.offset ?? 0;
      const { rows } = await db.query<AssistantRow & { total: string }>(
        `select *, count(*) over () as total from assistants where ${WHERE}
          order by ${body.sort_by ?? "created_at"} ${body.sort_order === "asc" ? "asc" : "desc"}, assistant_id
          limit $4 offset $5`,
        [...filters(body), limit, offset],
      );
      const picked = page(c, rows, offset, assistantOf, body.select);
      return c.json(picked, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/assistants/count",
      summary: "Count assistants by graph, name and metadata",
      request: {
        body: {
          content: {
            "application/json": { schema: Search.pick({ graph_id: true, name: true, metadata: true }) },
          },
          required: false,
        },
      },
      responses: { 200: json(z.number().int(), "How many"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const { rows } = await db.query<{ n: number }>(
        `select count(*)::int as n from assistants where ${WHERE}`,
        filters(body),
      );
      return c.json(rows[0]!.n, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/assistants/{assistant_id}",
      summary: "An assistant (by its uuid, or a graph's id for the graph's own)",
      request: { params: Params },
      responses: { 200: json(Assistant, "The assistant"), ...errors },
    }),
    async (c) => c.json(assistantOf(await read(db, idOf(c.req.valid("param").assistant_id))), 200),
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/assistants/{assistant_id}",
      summary: "Change an assistant: a new version, which is then the one in force",
      request: {
        params: Params,
        body: { content: { "application/json": { schema: Patch } }, required: true },
      },
      responses: { 200: json(Assistant, "The assistant at its new version"), ...errors },
    }),
    async (c) => {
      allow(c, ["admin"], "change assistants");
      const body = c.req.valid("json");
      if (body.graph_id) mustHaveGraph(body.graph_id);
      const id = idOf(c.req.valid("param").assistant_id);
      const row = await inTransaction(db, async (client) => {
        const current = await read(client, id, true);
        const graphId = body.graph_id ?? current.graph_id;
        const metadata = await withRelease(
          client,
          registry,
          graphId,
          body.metadata,
          body.metadata ? { ...current.metadata, ...body.metadata } : current.metadata,
        );
        const { rows } = await client.query<AssistantRow>(
          `update assistants set graph_id = $2, name = $3, description = $4, config = $5, context = $6,
                  metadata = $7, updated_at = now(),
                  version = (select max(version) + 1 from assistant_versions where assistant_id = $1)
            where assistant_id = $1 returning *`,
          [
            id,
            graphId,
            body.name ?? current.name,
            body.description === undefined ? current.description : body.description,
            body.config ?? current.config,
            body.context ?? current.context,
            metadata,
          ],
        );
        await client.query(
          `insert into assistant_versions (assistant_id, version, graph_id, name, description, config, context, metadata)
           select assistant_id, version, graph_id, name, description, config, context, metadata from assistants
            where assistant_id = $1`,
          [id],
        );
        return rows[0]!;
      });
      return c.json(assistantOf(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/assistants/{assistant_id}",
      summary: "Delete an assistant and its versions",
      request: { params: Params },
      responses: { 200: json(z.array(z.string()), "The deleted assistant's id"), ...errors },
    }),
    async (c) => {
      allow(c, ["admin"], "delete assistants");
      const id = idOf(c.req.valid("param").assistant_id);
      const { rows } = await db.query<{ assistant_id: string }>(
        "delete from assistants where assistant_id = $1 returning assistant_id",
        [id],
      );
      if (!rows[0])
        throw new NotFoundError(`There is no assistant ${id}; POST /assistants/search lists them.`);
      return c.json([rows[0].assistant_id], 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/assistants/{assistant_id}/versions",
      summary: "An assistant's versions, newest first",
      request: {
        params: Params,
        body: {
          content: {
            "application/json": {
              schema: z.object({
                limit: z.number().int().min(1).max(1000).optional(),
                offset: z.number().int().min(0).optional(),
                metadata: Json.optional(),
              }),
            },
          },
          required: false,
        },
      },
      responses: { 200: json(z.array(VersionRow), "Versions"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const id = idOf(c.req.valid("param").assistant_id);
      await read(db, id);
      const { rows } = await db.query<AssistantRow>(
        `select * from assistant_versions where assistant_id = $1 and ($2::jsonb is null or metadata @> $2::jsonb)
          order by version desc limit $3 offset $4`,
        [id, body.metadata ? JSON.stringify(body.metadata) : null, body.limit ?? 10, body.offset ?? 0],
      );
      return c.json(
        rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() })),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/assistants/{assistant_id}/latest",
      summary: "Put one of an assistant's versions back in force",
      request: {
        params: Params,
        body: {
          content: { "application/json": { schema: z.object({ version: z.number().int().min(1) }) } },
          required: true,
        },
      },
      responses: { 200: json(Assistant, "The assistant at that version"), ...errors },
    }),
    async (c) => {
      allow(c, ["admin"], "change assistants");
      const id = idOf(c.req.valid("param").assistant_id);
      const { version } = c.req.valid("json");
      const row = await inTransaction(db, async (client) => {
        await read(client, id, true);
        const { rows } = await client.query<AssistantRow>(
          `update assistants a set graph_id = v.graph_id, name = v.name, description = v.description,
                  config = v.config, context = v.context, metadata = v.metadata, version = v.version,
                  updated_at = now()
             from assistant_versions v
            where a.assistant_id = $1 and v.assistant_id = $1 and v.version = $2 returning a.*`,
          [id, version],
        );
        if (!rows[0])
          throw new NotFoundError(
            `Assistant ${id} has no version ${version}; POST /assistants/${id}/versions lists them.`,
          );
        return rows[0];
      });
      return c.json(assistantOf(row), 200);
    },
  );

  const SchemasBody = z
    .object({
      graph_id: z.string(),
      input_schema: z.unknown(),
      output_schema: z.unknown(),
      state_schema: z.unknown(),
      config_schema: z.unknown(),
      context_schema: z.unknown(),
    })
    .openapi("AssistantSchemas");
  app.openapi(
    createRoute({
      method: "get",
      path: "/assistants/{assistant_id}/schemas",
      summary: "The JSON schemas of the assistant's graph: input, output, state, config",
      request: { params: Params },
      responses: { 200: json(SchemasBody, "Schemas"), ...errors },
    }),
    async (c) => {
      const { graph_id } = await read(db, idOf(c.req.valid("param").assistant_id));
      const s = await registry.schemas(graph_id);
      return c.json(
        {
          graph_id,
          input_schema: s.input,
          output_schema: s.output,
          state_schema: s.state,
          config_schema: s.config,
          // A JS graph's context and config schemas are one and the same.
          context_schema: s.config,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/assistants/{assistant_id}/graph",
      summary: "The assistant's graph as nodes and edges (xray: with its subgraphs drawn in, to that depth)",
      request: {
        params: Params,
        query: z.object({
          xray: z
            .union([z.enum(["true", "false"]), z.string().regex(/^\d{1,2}$/)])
            .optional()
            .describe("true, false, or a depth"),
        }),
      },
      responses: { 200: json(Json, "The drawable graph"), ...errors },
    }),
    async (c) => {
      const { graph_id, config } = await read(db, idOf(c.req.valid("param").assistant_id));
      const raw = c.req.valid("query").xray;
      const xray = raw === undefined || raw === "false" ? undefined : raw === "true" ? true : Number(raw);
      const graph = await registry.get(graph_id);
      // A compiled StateGraph reads `xray` from the config (drawing its subgraphs in); Pregel's type omits it.
      const drawable = await graph.getGraphAsync({ ...config, xray } as Parameters<
        typeof graph.getGraphAsync
      >[0]);
      return c.json(drawable.toJSON() as Record<string, unknown>, 200);
    },
  );

  for (const path of [
    "/assistants/{assistant_id}/subgraphs",
    "/assistants/{assistant_id}/subgraphs/{namespace}",
  ])
    app.openapi(
      createRoute({
        method: "get",
        path,
        summary: "The schemas of the graph's subgraphs, by namespace (recurse: their subgraphs too)",
        request: {
          params: path.endsWith("}")
            ? Params.extend({
                namespace: z
                  .string()
                  .max(200)
                  .optional()
                  .openapi({ param: { name: "namespace", in: "path" } }),
              })
            : Params,
          query: z.object({ recurse: z.enum(["true", "false"]).optional() }),
        },
        responses: { 200: json(Json, "Schemas by namespace"), ...errors },
      }),
      async (c) => {
        const params = c.req.valid("param") as { assistant_id: string; namespace?: string };
        const { graph_id } = await read(db, idOf(params.assistant_id));
        const graph = await registry.get(graph_id);
        const result: Record<string, unknown> = {};
        for await (const [ns, subgraph] of graph.getSubgraphsAsync(
          params.namespace,
          c.req.valid("query").recurse === "true",
        ))
          result[ns] = await registry.schemas(graph_id, { graph: subgraph as typeof graph, namespace: ns });
        return c.json(result, 200);
      },
    );
}
