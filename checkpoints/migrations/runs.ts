import { sql, type Migration } from "./sql.js";

/**
 * The Agent Server API's runs (18). A run is carried by a Keel task (`task_id`): the task is what workers claim,
 * lease, fence, retry and cancel; the run is what the API shows. A run's status follows its task's, set by a
 * trigger in the transaction that moves the task, so every path of the runtime (claim, settle, cancel, lease
 * watch, approval expiry) keeps runs and threads true without knowing about them. A task can carry several runs
 * in turn (a resume through the API adopts the waiting task); the newest is the one its status moves.
 *
 * `run_events` is what a run streamed, in order (`seq`), so a client of any server process can join, leave and
 * replay from `Last-Event-ID`; an insert notifies `keel_run_events` with the run id, and so does a status change.
 */
export const RUNS_MIGRATIONS: Migration[] = [
  {
    id: 18,
    name: "runs and their event streams",
    up: sql(`
      create table runs (
        run_id uuid primary key,
        thread_id uuid not null references threads on delete cascade,
        assistant_id uuid not null,
        graph_id text not null,
        task_id uuid not null references tasks(id),
        owner text not null,
        status text not null default 'pending'
          check (status in ('pending', 'running', 'error', 'success', 'timeout', 'interrupted')),
        kwargs jsonb not null,
        metadata jsonb not null default '{}',
        multitask_strategy text not null default 'reject'
          check (multitask_strategy in ('reject', 'enqueue', 'interrupt', 'rollback')),
        -- The thread's newest checkpoint when the run first started: a later attempt whose thread has moved past
        -- it continues from the checkpoint instead of giving the input again.
        base_checkpoint text,
        started boolean not null default false,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now());
      create index runs_thread on runs (thread_id, created_at desc);
      create index runs_task on runs (task_id, created_at desc);
      create table run_events (
        run_id uuid not null references runs on delete cascade,
        seq int not null,
        event text not null,
        data text not null,
        created_at timestamptz not null default now(),
        primary key (run_id, seq));
      create function keel_notify_run_event() returns trigger language plpgsql as $$
        begin perform pg_notify('keel_run_events', new.run_id::text); return new; end $$;
      create trigger run_events_notify after insert on run_events for each row execute function keel_notify_run_event();
      -- A thread removed at a set time: a stateless run's thread, once its run has finished.
      alter table threads add column expires_at timestamptz;
      -- The nodes the thread's state would run next: a thread stopped before a node (interrupt_before) is
      -- interrupted even with no interrupt() pending.
      alter table threads add column pending_nodes text[] not null default '{}';
      create index threads_expiry on threads (expires_at) where expires_at is not null;
      create function keel_run_follows_task() returns trigger language plpgsql as $$
        declare
          current_run uuid;
          current_thread uuid;
          next_status text;
        begin
          select run_id, thread_id into current_run, current_thread
            from runs where task_id = new.id order by created_at desc limit 1;
          if current_run is null then return new; end if;
          next_status := case new.status
            when 'queued' then 'pending'
            when 'running' then 'running'
            when 'waiting_for_approval' then 'success'
            when 'done' then 'success'
            when 'failed' then case when new.error_reason = 'timeout' then 'timeout' else 'error' end
            else 'interrupted' end;
          update runs set status = next_status, updated_at = now() where run_id = current_run;
          update threads t set updated_at = now(), status = case
              when exists (select 1 from runs r where r.thread_id = t.thread_id and r.status in ('pending', 'running'))
                then 'busy'
              when next_status in ('error', 'timeout') then 'error'
              when t.interrupts <> '{}'::jsonb or cardinality(t.pending_nodes) > 0 then 'interrupted'
              else 'idle' end
            where t.thread_id = current_thread;
          perform pg_notify('keel_run_events', current_run::text);
          return new;
        end $$;
      create trigger tasks_run_status after update of status on tasks for each row
        when (old.status is distinct from new.status) execute function keel_run_follows_task();`),
  },
  // Crons of the Agent Server API: a schedule that starts a run, fired by the workers' minute tick.
  {
    id: 19,
    name: "crons",
    // payload: the run each firing starts (its kwargs, metadata, multitask strategy), as a run request stores it.
    // last_fired_at: the minute it last fired, so a tick that runs twice starts one run.
    up: sql(`
    create table crons (
      cron_id uuid primary key,
      assistant_id uuid not null,
      thread_id uuid references threads on delete cascade,
      owner text not null,
      schedule text not null,
      timezone text not null default 'UTC',
      end_time timestamptz,
      payload jsonb not null,
      metadata jsonb not null default '{}',
      enabled boolean not null default true,
      on_run_completed text not null default 'delete' check (on_run_completed in ('delete', 'keep')),
      last_fired_at timestamptz,
      last_error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now());
    create index crons_enabled on crons (enabled) where enabled;`),
  },
];
