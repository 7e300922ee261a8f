import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Item } from "@langchain/langgraph-checkpoint";
import type { PostgresStore } from "@langchain/langgraph-checkpoint-postgres/store";
import type { Context } from "hono";
import { InputError } from "../core/errors.js";
import { allow, errors, Json, jsonResponse, Refused, type Vars } from "./http.js";

/**
 * The Agent Server API's store (`/store/...`): LangGraph's long-term memory, on Postgres (LangGraph's own
 * `PostgresStore`, in its own schema). With keys, a submitter's items live under a namespace whose first label
 * is its identity (`["alice", "memories"]`): it may read and write only those. Reviewers read every namespace;
 * admins do anything.
 */

const Label = z
  .string()
  .min(1, "a namespace label may not be empty")
  .max(200)
  .refine((s) => !s.includes("."), "a namespace label may not contain a period")
  // The store keeps a namespace as its labels joined by colons: ["a:b"] and ["a", "b"] would be one.
  .refine((s) => !s.includes(":"), "a namespace label may not contain a colon");
const Namespace = z.array(Label).min(1, "give at least one namespace label").max(20);
/** The store's filter: values to match, or operators; the request schema below checks its shape. */
type StoreFilter = NonNullable<NonNullable<Parameters<PostgresStore["search"]>[1]>["filter"]>;

const StoreItem = z
  .object({
    namespace: z.array(z.string()),
    key: z.string(),
    value: Json,
    created_at: z.string(),
    updated_at: z.string(),
    score: z.number().nullable().optional(),
  })
  .openapi("StoreItem");

const itemOf = (item: Item & { score?: number }) => ({
  namespace: item.namespace,
  key: item.key,
  value: item.value as Record<string, unknown>,
  created_at: new Date(item.createdAt).toISOString(),
  updated_at: new Date(item.updatedAt).toISOString(),
  ...(item.score === undefined ? {} : { score: item.score }),
});

const json = jsonResponse;

export function storeRoutes(app: OpenAPIHono<Vars>, store: PostgresStore): void {
  /** Refuses a submitter a namespace outside its own; answers with the namespace to use instead. */
  const scope = (c: Context<Vars>, namespace: string[], write: boolean) => {
    const caller = c.get("caller");
    if (write && caller.role === "reviewer") allow(c, ["submitter", "admin"], "write to the store");
    if (caller.role === "submitter" && namespace[0] !== caller.identity)
      throw new Refused(
        403,
        "forbidden",
        `A submitter key reaches only namespaces that start with its identity: use ["${caller.identity}", …], not [${namespace.map((l) => JSON.stringify(l)).join(", ")}].`,
      );
  };
  /** The prefix a submitter's search or listing is held to. */
  const own = (c: Context<Vars>, prefix: string[] | undefined) => {
    const caller = c.get("caller");
    if (caller.role !== "submitter") return prefix;
    if (!prefix?.length) return [caller.identity];
    scope(c, prefix, false);
    return prefix;
  };

  app.openapi(
    createRoute({
      method: "put",
      path: "/store/items",
      summary: "Store or replace an item",
      request: {
        body: {
          content: {
            "application/json": {
              schema: z
                .object({
                  namespace: Namespace,
                  key: z.string().min(1).max(500),
                  value: Json,
                  index: z
                    .union([z.literal(false), z.array(z.string())])
                    .nullable()
                    .optional(),
                  ttl: z.number().positive().nullable().optional().describe("Minutes until it expires"),
                })
                .openapi("StorePut"),
            },
          },
          required: true,
        },
      },
      responses: { 204: { description: "Stored" }, ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      scope(c, body.namespace, true);
      await store.put(body.namespace, body.key, body.value, body.index ?? undefined, {
        ttl: body.ttl ?? undefined,
      });
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/store/items",
      summary: "An item by namespace (labels joined by periods) and key",
      request: {
        query: z.object({
          namespace: z.string().min(1).max(4000).describe("e.g. alice.memories"),
          key: z.string().min(1).max(500),
          refresh_ttl: z.enum(["true", "false"]).optional(),
        }),
      },
      responses: { 200: json(StoreItem.nullable(), "The item, or null when there is none"), ...errors },
    }),
    async (c) => {
      const { namespace, key } = c.req.valid("query");
      const labels = Namespace.safeParse(namespace.split("."));
      if (!labels.success)
        throw new InputError(`The namespace "${namespace}" is not one: give its labels joined by periods.`);
      scope(c, labels.data, false);
      const item = await store.get(labels.data, key);
      // A key with no item answers null, as LangGraph's servers do (the SDK's getItem returns null for it).
      return c.json(item ? itemOf(item) : null, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/store/items",
      summary: "Delete an item",
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({ namespace: Namespace, key: z.string().min(1).max(500) }),
            },
          },
          required: true,
        },
      },
      responses: { 204: { description: "Deleted (or was not there)" }, ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      scope(c, body.namespace, true);
      await store.delete(body.namespace, body.key);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/store/items/search",
      summary: "Items under a namespace prefix, filtered by value and matched by text",
      request: {
        body: {
          content: {
            "application/json": {
              schema: z
                .object({
                  namespace_prefix: z.array(Label).max(20).optional(),
                  filter: z
                    .record(
                      z.string(),
                      z.union([
                        z.string(),
                        z.number(),
                        z.boolean(),
                        z.null(),
                        z.record(z.string(), z.unknown()),
                      ]),
                    )
                    .nullable()
                    .optional()
                    .describe('Values to match, or operators such as {"$gt": 3}'),
                  limit: z.number().int().min(1).max(1000).optional(),
                  offset: z.number().int().min(0).optional(),
                  query: z.string().max(2000).nullable().optional(),
                  refresh_ttl: z.boolean().nullable().optional(),
                })
                .openapi("StoreSearch"),
            },
          },
          required: false,
        },
      },
      responses: { 200: json(z.object({ items: z.array(StoreItem) }), "Items"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const prefix = own(c, body.namespace_prefix) ?? [];
      if (prefix.length === 0)
        throw new InputError(
          'Give "namespace_prefix": at least one label to search under (e.g. ["alice"]); /store/namespaces lists them.',
        );
      const items = await store.search(prefix, {
        filter: (body.filter ?? undefined) as StoreFilter | undefined,
        limit: body.limit ?? 10,
        offset: body.offset ?? 0,
        query: body.query ?? undefined,
      });
      return c.json({ items: items.map(itemOf) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/store/namespaces",
      summary: "The namespaces in use, by prefix, suffix and depth",
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({
                prefix: z.array(Label).max(20).optional(),
                suffix: z.array(Label).max(20).optional(),
                max_depth: z.number().int().min(1).max(20).optional(),
                limit: z.number().int().min(1).max(1000).optional(),
                offset: z.number().int().min(0).optional(),
              }),
            },
          },
          required: false,
        },
      },
      responses: {
        200: json(z.object({ namespaces: z.array(z.array(z.string())) }), "Namespaces"),
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const namespaces = await store.listNamespaces({
        prefix: own(c, body.prefix),
        suffix: body.suffix,
        maxDepth: body.max_depth,
        limit: body.limit ?? 100,
        offset: body.offset ?? 0,
      });
      return c.json({ namespaces }, 200);
    },
  );
}
