import type pg from "pg";
import { seedBusinessData } from "./seed/business.js";
import { seedKnowledgeBase } from "./seed/knowledge.js";

/**
 * Keel's own schema, as an append-only list: never edit or reorder an entry that has shipped; add a new one.
 * Each runs once, in its own transaction, recorded in `keel_migrations`.
 */
interface Migration {
  id: number;
  name: string;
  up: (client: pg.PoolClient) => Promise<void>;
}

const sql =
  (text: string) =>
  async (client: pg.PoolClient): Promise<void> => {
    await client.query(text);
  };

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: "knowledge base",
    up: sql(`
      create table kb_documents (
        id text primary key,
        title text not null,
        tags text[] not null default '{}',
        body text not null,
        search tsvector generated always as (
          setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
        ) stored
      );
      create index kb_documents_search on kb_documents using gin (search);`),
  },
  {
    id: 2,
    name: "sample business dataset",
    up: sql(`
      create schema demo;
      create table demo.regions (id int primary key, name text not null unique, manager text not null);
      create table demo.customers (
        id int primary key, name text not null, segment text not null,
        region_id int not null references demo.regions(id), signup_date date not null);
      create table demo.products (
        id int primary key, name text not null, category text not null, unit_price numeric(10,2) not null);
      create table demo.orders (
        id int primary key, customer_id int not null references demo.customers(id),
        ordered_at date not null, status text not null);
      create table demo.order_items (
        order_id int not null references demo.orders(id), product_id int not null references demo.products(id),
        quantity int not null, unit_price numeric(10,2) not null, primary key (order_id, product_id));
      comment on table demo.regions is 'Sales regions and their managers';
      comment on table demo.customers is 'Customer accounts: segment is smb, mid-market or enterprise';
      comment on table demo.products is 'Product catalogue with list price';
      comment on table demo.orders is 'Orders; status is placed, shipped, delivered, cancelled or refunded';
      comment on table demo.order_items is 'Order lines: revenue of a line is quantity * unit_price';`),
  },
  {
    id: 3,
    name: "outbox",
    up: sql(`
      create table outbox (
        id bigserial primary key,
        thread_id text not null,
        tool_call_id text not null,
        recipient text not null,
        subject text not null,
        body text not null,
        approved_by text,
        created_at timestamptz not null default now(),
        unique (thread_id, tool_call_id));`),
  },
  {
    id: 4,
    name: "tool call log",
    up: sql(`
      create table tool_calls (
        id bigserial primary key,
        thread_id text not null,
        agent text not null,
        tool text not null,
        tool_call_id text not null,
        args jsonb not null,
        status text not null check (status in ('ok', 'invalid_arguments', 'error', 'rejected')),
        result jsonb,
        error text,
        duration_ms int not null,
        created_at timestamptz not null default now());
      create index tool_calls_thread on tool_calls (thread_id, created_at);`),
  },
  { id: 5, name: "seed knowledge base", up: seedKnowledgeBase },
  { id: 6, name: "seed business dataset", up: seedBusinessData },
];

// One fixed key so that every Keel process (and LangGraph's setup) migrates one at a time.
const MIGRATION_LOCK_KEY = 0x6b65656c; // "keel"

/** Runs `work` while holding Keel's migration advisory lock on a dedicated connection. */
export async function withMigrationLock<T>(pool: pg.Pool, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    try {
      return await work();
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

/** Applies every migration not yet recorded. Safe to call from any number of processes at once. */
export async function migrate(pool: pg.Pool): Promise<number[]> {
  return withMigrationLock(pool, async () => {
    await pool.query(`create table if not exists keel_migrations (
      id int primary key, name text not null, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await pool.query<{ id: number }>("select id from keel_migrations")).rows.map((r) => r.id),
    );
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.id)) continue;
      const client = await pool.connect();
      try {
        await client.query("begin");
        await migration.up(client);
        await client.query("insert into keel_migrations (id, name) values ($1, $2)", [
          migration.id,
          migration.name,
        ]);
        await client.query("commit");
        applied.push(migration.id);
      } catch (error) {
        await client.query("rollback");
        throw new Error(`migration ${migration.id} (${migration.name}) failed: ${(error as Error).message}`, {
          cause: error,
        });
      } finally {
        client.release();
      }
    }
    return applied;
  });
}
