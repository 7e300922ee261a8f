import { sql, type Migration } from "./sql.js";

/**
 * The task runtime: `tasks` and `task_events` (7), approvals (7), child and approval lookups and the fence
 * function checkpoint writes call (8), queues and typed failures (12), crash counts (13), purges (14). Migration 11 (observability.ts) adds a
 * task's trace context and workflow.
 */
export const TASKS_MIGRATIONS: readonly Migration[] = [
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
  {
    id: 13,
    name: "crashes counted apart from failed attempts",
    // crashes: runs that lost their worker (lease expired); they do not use attempts, and max_crashes stops a task
    // that kills its worker every time. claim_counted: whether the current claim used an attempt (a resume does not).
    up: sql(`
      alter table tasks add column crashes int not null default 0;
      alter table tasks add column max_crashes int not null default 10;
      alter table tasks add column claim_counted boolean not null default true;`),
  },
  {
    id: 14,
    name: "purged requests",
    // purged_at: when keel purge (or the retention setting) erased the request's content (runtime/purge.ts).
    up: sql(`alter table tasks add column purged_at timestamptz;`),
  },
];
