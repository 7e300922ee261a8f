import type pg from "pg";
import { SystemError } from "../core/errors.js";
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
  {
    id: 7,
    name: "task runtime",
    up: sql(`
      create table tasks (
        id uuid primary key,
        parent_id uuid references tasks(id),
        root_id uuid not null,
        agent_task_id text,
        agent_type text,
        request text,
        status text not null check (status in ('queued', 'running', 'waiting_for_approval', 'done', 'failed', 'cancelled')),
        attempts int not null default 0,
        max_attempts int not null default 3,
        last_error text,
        error_reason text,
        idempotency_key text unique,
        payload_hash text,
        idempotency_expires_at timestamptz,
        lease_owner text,
        lease_expires_at timestamptz,
        fencing_token bigint not null default 0,
        cancel_requested boolean not null default false,
        deadline_at timestamptz,
        final_answer text,
        result jsonb,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        started_at timestamptz,
        finished_at timestamptz,
        unique (root_id, agent_task_id));
      create index tasks_root on tasks (root_id);
      create index tasks_status on tasks (status, created_at) where parent_id is null;
      create table task_events (
        id bigserial primary key,
        task_id uuid not null references tasks(id),
        from_status text,
        to_status text not null,
        reason text,
        attempt int not null,
        worker text,
        at timestamptz not null default now());
      create index task_events_task on task_events (task_id, id);
      create function keel_notify_task_event() returns trigger language plpgsql as $$
        begin perform pg_notify('keel_task_events', (select root_id::text from tasks where id = new.task_id)); return new; end $$;
      create trigger task_events_notify after insert on task_events for each row execute function keel_notify_task_event();
      create table approvals (
        id uuid primary key,
        task_id uuid not null references tasks(id),
        agent_task_id text,
        interrupt_id text not null,
        context jsonb not null,
        status text not null check (status in ('pending', 'approved', 'rejected', 'expired', 'withdrawn')),
        decision jsonb,
        reviewer text,
        reason text,
        created_at timestamptz not null default now(),
        decided_at timestamptz,
        expires_at timestamptz not null);
      create index approvals_pending on approvals (status, created_at);`),
  },
  {
    id: 8,
    name: "task runtime: child and approval lookups, fenced checkpoint writes",
    up: sql(`
      create index tasks_parent on tasks (parent_id) where parent_id is not null;
      create index approvals_task on approvals (task_id, status);
      -- Called first in each checkpoint-write transaction of a worker: the write goes ahead only while the task
      -- is running under this fencing token, and the share lock makes a takeover wait until the write commits.
      create function keel_hold_fence(task uuid, token bigint) returns void language plpgsql as $$
        begin
          perform 1 from tasks where id = task and fencing_token = token and status = 'running' for share;
          if not found then
            raise exception 'task % is no longer held with fencing token %', task, token using errcode = 'KF001';
          end if;
        end $$;`),
  },
  {
    id: 9,
    name: "guardrails: policy decisions, guardrail events, effect ledger",
    up: sql(`
      alter table tool_calls drop constraint tool_calls_status_check;
      alter table tool_calls add constraint tool_calls_status_check
        check (status in ('ok', 'invalid_arguments', 'error', 'rejected', 'refused'));
      alter table tasks add column submitted_by text;
      alter table approvals add column mode text not null default 'async' check (mode in ('async', 'sync'));
      alter table outbox add column status text not null default 'queued' check (status in ('queued', 'withdrawn', 'sent'));
      create table policy_decisions (
        id bigserial primary key,
        thread_id text not null,
        tool_call_id text not null,
        agent text not null,
        tool text not null,
        decision text not null check (decision in ('autonomous', 'logged', 'async_approval', 'sync_approval')),
        reasons text[] not null,
        inputs jsonb not null,
        created_at timestamptz not null default now(),
        unique (thread_id, tool_call_id));
      create table guardrail_events (
        id bigserial primary key,
        thread_id text,
        stage text not null check (stage in ('request', 'tool_output')),
        action text not null check (action in ('blocked', 'neutralised')),
        reason text not null,
        detail text not null,
        created_at timestamptz not null default now());
      create index guardrail_events_thread on guardrail_events (thread_id, created_at);
      create table effects (
        key text primary key,
        seq bigserial not null,
        thread_id text not null,
        tool_call_id text not null,
        agent text not null,
        tool text not null,
        args_hash text not null,
        args jsonb not null,
        state text not null check (state in ('started', 'committed', 'failed', 'compensated', 'compensation_failed')),
        result jsonb,
        error text,
        started_at timestamptz not null default now(),
        finished_at timestamptz,
        compensated_at timestamptz);
      create index effects_thread on effects (thread_id, seq);
      create table task_usage (
        thread_id text primary key,
        model_calls int not null default 0,
        tool_calls int not null default 0,
        tokens bigint not null default 0,
        cost_usd numeric(14, 6) not null default 0,
        updated_at timestamptz not null default now());`),
  },
  {
    id: 10,
    name: "read-only role for the data tool",
    // Roles belong to the whole server, so two databases migrating at once may race to create it.
    up: sql(`
      do $$ begin
        create role keel_reader nologin;
      exception when duplicate_object or unique_violation then null;
      end $$;
      grant keel_reader to current_user;
      grant usage on schema demo to keel_reader;
      grant select on all tables in schema demo to keel_reader;`),
  },
  {
    id: 11,
    name: "observability: trajectory store, trace context and workflow of a task",
    // The tool-call log becomes one kind of trajectory step; a view keeps its old shape for readers of it.
    up: sql(`
      create table trajectory_steps (
        id bigserial primary key,
        thread_id text not null,
        task_id text,
        agent text not null,
        kind text not null check (kind in ('model_call', 'tool_call', 'handoff', 'approval_requested',
          'approval_decided', 'retry', 'error')),
        name text not null,
        tool_call_id text,
        status text not null,
        input jsonb,
        output jsonb,
        error text,
        error_class text,
        input_tokens int,
        output_tokens int,
        cost_usd numeric(14, 6),
        attempt int,
        turn int,
        started_at timestamptz not null default now(),
        duration_ms int,
        first_token_ms int,
        trace_id text,
        span_id text,
        check (kind <> 'tool_call' or status in ('ok', 'invalid_arguments', 'error', 'rejected', 'refused')));
      create index trajectory_steps_thread on trajectory_steps (thread_id, started_at);
      create index trajectory_steps_started on trajectory_steps (started_at);
      create index trajectory_steps_kind on trajectory_steps (kind, started_at);
      insert into trajectory_steps (thread_id, agent, kind, name, tool_call_id, status, input, output, error,
          started_at, duration_ms)
        select thread_id, agent, 'tool_call', tool, tool_call_id, status, args, result, error, created_at, duration_ms
          from tool_calls order by id;
      drop table tool_calls;
      create view tool_calls as
        select id, thread_id, agent, name as tool, tool_call_id, input as args, status, output as result, error,
               duration_ms, started_at as created_at
          from trajectory_steps where kind = 'tool_call';
      alter table tasks add column trace_context text;
      alter table tasks add column workflow text not null default 'default';
      create index tasks_finished on tasks (finished_at) where parent_id is null;`),
  },
  {
    id: 12,
    name: "task queues, typed failures",
    // queue: which workers may drive the task (keel worker --queue; keel run/batch/eval use their own).
    // error_reason holds a FailureReason code from now on; the policy rule that stopped a task moves to error_rule.
    up: sql(`
      alter table tasks add column queue text not null default 'default';
      alter table tasks add column error_fault text;
      alter table tasks add column error_rule text;
      update tasks set error_rule = error_reason, error_reason = split_part(error_reason, ':', 1)
        where error_reason like '%:%';
      update tasks set error_reason = case
          when error_reason in ('injection', 'prohibited_action', 'out_of_scope') then 'blocked'
          when error_reason = 'error' then 'internal'
          else error_reason end
        where error_reason is not null;`),
  },
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
        throw new SystemError(
          "database_error",
          `migration ${migration.id} (${migration.name}) failed and was rolled back: ${(error as Error).message}`,
          { cause: error },
        );
      } finally {
        client.release();
      }
    }
    return applied;
  });
}
