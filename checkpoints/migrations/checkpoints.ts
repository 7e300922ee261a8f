import { sql, type Migration } from "./sql.js";

/** The advisory lock class of task fences ("kf"); the object is a hash of the task id. */
const FENCE_LOCK_CLASS = 0x6b66;

/** The checkpointer's tables (`checkpoints/keel-saver.ts`). */
export const CHECKPOINT_MIGRATIONS: Migration[] = [
  {
    id: 20,
    name: "checkpoint tables are Keel's: made here in LangGraph's PostgresSaver layout, writes keep their task path",
    // A database that LangGraph's PostgresSaver set up already has these tables and keeps its threads as they are;
    // a new one gets the same layout, so either saver reads what the other wrote. task_path orders a superstep's
    // writes as LangGraph applies them (rows written before it sort first, by task id, as LangGraph expects).
    up: sql(`
      create table if not exists checkpoints (
        thread_id text not null,
        checkpoint_ns text not null default '',
        checkpoint_id text not null,
        parent_checkpoint_id text,
        type text,
        checkpoint jsonb not null,
        metadata jsonb not null default '{}',
        primary key (thread_id, checkpoint_ns, checkpoint_id));
      create table if not exists checkpoint_blobs (
        thread_id text not null,
        checkpoint_ns text not null default '',
        channel text not null,
        version text not null,
        type text not null,
        blob bytea,
        primary key (thread_id, checkpoint_ns, channel, version));
      alter table checkpoint_blobs alter column blob drop not null;
      create table if not exists checkpoint_writes (
        thread_id text not null,
        checkpoint_ns text not null default '',
        checkpoint_id text not null,
        task_id text not null,
        idx integer not null,
        channel text not null,
        type text,
        blob bytea not null,
        primary key (thread_id, checkpoint_ns, checkpoint_id, task_id, idx));
      alter table checkpoint_writes add column if not exists task_path text not null default '';`),
  },
  {
    id: 21,
    name: "fenced writes hold a shared advisory lock instead of a row lock",
    // The fence check of migration 8 locked the task row FOR SHARE: a write to the row (and, under concurrency, a
    // multixact) on every checkpoint write. Now a fenced write holds a transaction-scoped shared advisory lock on
    // the task, in memory, and then reads the row with a fresh snapshot; any change of a task's fencing token or
    // status takes the exclusive lock first (the trigger), so it still waits for a write in flight, and every
    // later write of the old holder still sees the new token and is refused.
    up: sql(`
      create function keel_fence_lock(task uuid) returns void language sql as $$
        select pg_advisory_xact_lock_shared(${FENCE_LOCK_CLASS}, hashtext(task::text)) $$;
      create or replace function keel_hold_fence(task uuid, token bigint) returns void language plpgsql as $$
        begin
          perform keel_fence_lock(task);
          perform 1 from tasks where id = task and fencing_token = token and status = 'running';
          if not found then
            raise exception 'task % is no longer held with fencing token %', task, token using errcode = 'KF001';
          end if;
        end $$;
      create function keel_fence_moved() returns trigger language plpgsql as $$
        begin
          perform pg_advisory_xact_lock(${FENCE_LOCK_CLASS}, hashtext(new.id::text));
          return new;
        end $$;
      create trigger tasks_fence_moved before update of fencing_token, status on tasks for each row
        when (old.fencing_token is distinct from new.fencing_token or old.status is distinct from new.status)
        execute function keel_fence_moved();`),
  },
  {
    id: 22,
    name: "checkpoint retention: what was applied to each finished thread",
    // One row per thread that retention pruned: what it applied, to the thread as it was when it ended (a thread
    // that ends again later, after another run, is looked at again), and what it removed.
    up: sql(`
      create table checkpoint_retention (
        thread_id text primary key,
        applied text not null check (applied in ('latest', 'delete')),
        ended_at timestamptz not null,
        applied_at timestamptz not null default now(),
        checkpoints int not null,
        writes int not null,
        blobs int not null,
        bytes bigint not null);`),
  },
];
