import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { isKeelError } from "../core/errors.js";
import { ThreadBusyError } from "../runtime/runs/store.js";
import type { Caller, Role } from "./access.js";

/** A request refused for who is calling: 401 (no valid key), 403 (a role that may not), 429 (too many). */
export class Refused extends Error {
  constructor(
    readonly status: 401 | 403 | 429,
    readonly code: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export type Vars = { Variables: { caller: Caller; requestId: string } };

export const ErrorBody = z
  .object({
    code: z.string().describe("The failure's reason code (core/failures.ts), or `validation_error`"),
    message: z.string().describe("What was wrong and what to do"),
    request_id: z.string().describe("Quote it when reporting a problem"),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Error");

export const errors = {
  400: { description: "Bad input", content: { "application/json": { schema: ErrorBody } } },
  401: { description: "No valid API key", content: { "application/json": { schema: ErrorBody } } },
  403: {
    description: "The key's role may not do this, or a guardrail blocked it",
    content: { "application/json": { schema: ErrorBody } },
  },
  429: {
    description: "Too many requests with this key (Retry-After says when to retry)",
    content: { "application/json": { schema: ErrorBody } },
  },
  404: { description: "No such task", content: { "application/json": { schema: ErrorBody } } },
  409: { description: "Conflict", content: { "application/json": { schema: ErrorBody } } },
  422: { description: "Invalid body or reused key", content: { "application/json": { schema: ErrorBody } } },
};

/** The HTTP status a Keel failure answers with. */
export function statusFor(error: unknown): ErrorStatus {
  if (!isKeelError(error)) return 500;
  // LangGraph's servers answer a run on a busy thread with 422; clients (the SDK, useStream) expect it.
  if (error instanceof ThreadBusyError) return 422;
  if (error.code === "not_found") return 404;
  if (error.code === "conflict") return 409;
  if (error.code === "blocked" || error.code === "budget_exceeded") return 403;
  if (error.code === "database_error" || error.code === "dependency_failed") return 503;
  return error.fault === "user" ? 400 : 500;
}

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 422 | 429 | 500 | 503 | 504;

export function fail<S extends ErrorStatus>(
  c: Context,
  status: S,
  code: string,
  message: string,
  extra = {},
) {
  return c.json({ code, message, request_id: c.get("requestId"), ...extra }, status);
}

/** The caller, if its role is one of `roles`; a 403 that names the role needed otherwise. */
export function allow(c: Context<Vars>, roles: readonly Role[], what: string): Caller {
  const caller = c.get("caller");
  if (!roles.includes(caller.role))
    throw new Refused(
      403,
      "forbidden",
      `A ${caller.role} key may not ${what}; that needs a key with the role ${roles.join(" or ")}.`,
    );
  return caller;
}

/** Any JSON object (metadata, config, values). */
export const Json = z.record(z.string(), z.unknown());

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in the path (`/threads/{thread_id}`), declared for the OpenAPI document under its name. */
export const uuidPath = (name: string) =>
  z
    .string()
    .regex(UUID, "must be a UUID")
    .openapi({ param: { name, in: "path" } });

/** The thread a route's path names. */
export const ThreadParams = z.object({ thread_id: uuidPath("thread_id") });

/** A yes/no query parameter, as the SDK sends one. */
export const Flag = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** A JSON response, for a route's `responses`. */
export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/**
 * One page of a search whose rows carry `total` (`count(*) over ()`): sets the Agent Server API's pagination
 * headers and keeps only the `select`ed fields of each item.
 */
export function page<R extends { total: string | number }, T extends object>(
  c: Context,
  rows: R[],
  offset: number,
  toItem: (row: Omit<R, "total">) => T,
  select?: readonly string[],
): Partial<T>[] {
  const total = Number(rows[0]?.total ?? 0);
  c.header("X-Pagination-Total", String(total));
  if (offset + rows.length < total) c.header("X-Pagination-Next", String(offset + rows.length));
  return rows.map(({ total: _total, ...row }) => {
    const item = toItem(row);
    return select
      ? (Object.fromEntries(Object.entries(item).filter(([k]) => select.includes(k))) as Partial<T>)
      : item;
  });
}
