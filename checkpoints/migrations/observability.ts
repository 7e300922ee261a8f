import { sql, type Migration } from "./sql.js";

/** The trajectory store (which the tool-call log became), and the trace context and workflow of a task. */
export const OBSERVABILITY_MIGRATIONS: readonly Migration[] = [
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
];
