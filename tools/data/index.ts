import { z } from "zod";
import { ToolCallError } from "../../core/errors.js";
import { defineTool, READ_ONLY } from "../contract.js";

/** The schema the data agent sees; Keel's own tables are not part of the sample dataset. */
const SCHEMA = "demo";

export const listTables = defineTool({
  name: "list_tables",
  description: "List the tables of the business dataset with a description and row count of each.",
  input: z.object({}),
  output: z.object({
    tables: z.array(z.object({ name: z.string(), description: z.string(), rows: z.number() })),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["data"],
  timeoutMs: 5_000,
  async run(_args, ctx) {
    const pool = await ctx.db();
    const { rows } = await pool.query<{ name: string; description: string | null; rows: string }>(
      `select c.relname as name, obj_description(c.oid, 'pg_class') as description,
              (xpath('/row/n/text()', query_to_xml(format('select count(*) as n from %I.%I', $1::text, c.relname), false, true, '')))[1]::text as rows
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind = 'r'
        order by c.relname`,
      [SCHEMA],
    );
    return {
      tables: rows.map((r) => ({ name: r.name, description: r.description ?? "", rows: Number(r.rows) })),
    };
  },
});

export const describeTable = defineTool({
  name: "describe_table",
  description: "Show the columns (name, type, nullable) of one table of the business dataset.",
  input: z.object({ table: z.string().min(1).max(63).describe("Table name from list_tables") }),
  output: z.object({
    table: z.string(),
    columns: z.array(z.object({ name: z.string(), type: z.string(), nullable: z.boolean() })),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["data"],
  timeoutMs: 5_000,
  async run({ table }, ctx) {
    const pool = await ctx.db();
    const { rows } = await pool.query<{ name: string; type: string; nullable: string }>(
      `select column_name as name, data_type as type, is_nullable as nullable
         from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position`,
      [SCHEMA, table],
    );
    if (rows.length === 0) {
      throw new ToolCallError(
        `There is no table "${table}". Call list_tables to see the tables.`,
        "not_found",
      );
    }
    return {
      table,
      columns: rows.map((r) => ({ name: r.name, type: r.type, nullable: r.nullable === "YES" })),
    };
  },
});

// Statements that can only write or change the session; refused before they reach the server. The READ ONLY
// transaction below is the real guard (it also stops writes hidden in CTEs); this gives a clearer message.
const WRITING =
  /^\s*(insert|update|delete|merge|drop|create|alter|truncate|grant|revoke|copy|call|do|vacuum|analyze|cluster|reindex|lock|set|reset|begin|start|commit|rollback|savepoint|release|prepare|execute|deallocate|listen|notify|refresh|comment|security|import|load|discard)\b/i;

/** Created by migration 10 with SELECT on the dataset only. */
const READER_ROLE = "keel_reader";

// Functions that reach outside the dataset (files, other sessions, the server) or change settings; refused
// with a clear message. The reader role is the real guard; this names the problem for the agent.
const OUTSIDE =
  /\b(set_config|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|lo_import|lo_export|lo_\w+|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|dblink\w*|current_setting|pg_advisory\w*|txid_\w+|nextval|setval)\s*\(/i;

export const runSql = defineTool({
  name: "run_sql",
  description:
    "Run one read-only SQL query (PostgreSQL dialect) over the business dataset. Writes are refused. " +
    "Results are capped at a row limit; a statement timeout applies.",
  input: z.object({ sql: z.string().min(1).max(10_000).describe("One SELECT (or WITH … SELECT) statement") }),
  output: z.object({
    columns: z.array(z.string()),
    rows: z.array(z.record(z.string(), z.unknown())),
    row_count: z.number().describe("Rows returned (after the limit)"),
    truncated: z.boolean().describe("True when more rows existed than the limit"),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["data"],
  timeoutMs: 15_000,
  async run({ sql }, ctx) {
    const statement = sql.trim().replace(/;\s*$/, "");
    const hiddenWrite = /\b(insert\s+into|update\s+[\w."]+\s+set|delete\s+from|merge\s+into)\b/i.exec(
      statement,
    );
    if (hiddenWrite) {
      throw new ToolCallError(
        `run_sql is read-only: the query contains "${hiddenWrite[1]}". Write a SELECT query.`,
        "invalid_argument",
      );
    }
    if (WRITING.test(statement)) {
      throw new ToolCallError(
        `run_sql is read-only: "${statement.split(/\s+/)[0]}" statements are not allowed. Write a SELECT query.`,
        "invalid_argument",
      );
    }
    const outside = OUTSIDE.exec(statement);
    if (outside) {
      throw new ToolCallError(
        `run_sql refuses ${outside[1]}(): queries may only read the dataset's tables.`,
        "invalid_argument",
      );
    }
    if (statement.includes(";")) {
      throw new ToolCallError(
        "run_sql takes exactly one statement; remove the extra ';'.",
        "invalid_argument",
      );
    }
    const limit = ctx.limits.sqlRowLimit;
    const pool = await ctx.db();
    const client = await pool.connect();
    try {
      await client.query("begin transaction read only");
      await client.query(`set local statement_timeout = ${Math.floor(ctx.limits.sqlTimeoutMs)}`);
      await client.query(`set local search_path = ${SCHEMA}`);
      // The query runs as a role that may only read the dataset: no server files, no admin functions, no
      // other schemas, whatever the connection itself may do.
      await client.query(`set local role ${READER_ROLE}`);
      const isSelect = /^\s*(select|with|values|table)\b/i.test(statement);
      const text = isSelect ? `select * from (${statement}) as keel_query limit ${limit + 1}` : statement;
      // Extended protocol: the server accepts one statement only, so nothing can follow and end the transaction.
      const result = await client.query({ text, queryMode: "extended" } as { text: string });
      const truncated = result.rows.length > limit;
      const rows = (truncated ? result.rows.slice(0, limit) : result.rows) as Record<string, unknown>[];
      return { columns: result.fields.map((f) => f.name), rows, row_count: rows.length, truncated };
    } catch (error) {
      if (error instanceof ToolCallError) throw error;
      const pgError = error as { code?: string; message: string };
      if (pgError.code === "25006") {
        throw new ToolCallError(
          `run_sql is read-only: ${pgError.message}. Write a SELECT query.`,
          "invalid_argument",
        );
      }
      if (pgError.code === "42501") {
        throw new ToolCallError(
          `run_sql may only read the dataset's tables: ${pgError.message}.`,
          "invalid_argument",
        );
      }
      if (pgError.code === "57014") {
        throw new ToolCallError(
          `The query ran longer than ${ctx.limits.sqlTimeoutMs} ms and was cancelled.`,
          "timeout",
        );
      }
      throw new ToolCallError(`SQL error: ${pgError.message}`, "invalid_argument");
    } finally {
      await client.query("rollback").catch(() => undefined);
      client.release();
    }
  },
});

export const DATA_TOOLS = [listTables, describeTable, runSql];
