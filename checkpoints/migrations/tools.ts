import { sql, type Migration } from "./sql.js";

/**
 * What tools leave behind: the outbox, the tool-call log (a view over trajectory steps since 11), policy
 * decisions, guardrail events and the effect ledger (9).
 */
export const TOOLS_MIGRATIONS: readonly Migration[] = [
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
];
