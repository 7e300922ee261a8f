import { sql, type Migration } from "./sql.js";

/**
 * `keel serve`'s own tables: who may call it (API keys, stored as hashes only, and the per-key request counters),
 * and the Agent Server API's assistants with their versions.
 */
export const ACCESS_MIGRATIONS: Migration[] = [
  {
    id: 15,
    name: "api keys and rate limits",
    // api_keys: `keel keys create` prints a key once; only its SHA-256 is kept (keys are 192 random bits, so a
    // slow hash would add nothing). name is the identity recorded for what the key does; prefix shows which key.
    // rate_limits: rate-limiter-flexible's Postgres table, one row per key and window.
    up: sql(`
      create table api_keys (
        id text primary key,
        name text not null,
        role text not null check (role in ('submitter', 'reviewer', 'admin')),
        key_hash text not null unique,
        created_by text not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz,
        revoked_at timestamptz);
      create table rate_limits (
        key varchar(255) primary key,
        points integer not null default 0,
        expire bigint);`),
  },
  {
    id: 16,
    name: "assistants and their versions",
    // An assistant is a graph of langgraph.json with a configuration; every change is a new version, and
    // `version` is the one in force (set back with /latest). One per graph is made when keel serve starts.
    up: sql(`
      create table assistants (
        assistant_id uuid primary key,
        graph_id text not null,
        name text not null,
        description text,
        config jsonb not null default '{}',
        context jsonb not null default '{}',
        metadata jsonb not null default '{}',
        version int not null default 1,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now());
      create index assistants_graph on assistants (graph_id);
      create table assistant_versions (
        assistant_id uuid not null references assistants on delete cascade,
        version int not null,
        graph_id text not null,
        name text not null,
        description text,
        config jsonb not null default '{}',
        context jsonb not null default '{}',
        metadata jsonb not null default '{}',
        created_at timestamptz not null default now(),
        primary key (assistant_id, version));`),
  },
  {
    id: 17,
    name: "threads",
    // The Agent Server API's threads. owner: the identity that made it (a submitter sees only its own).
    // values and interrupts are the thread's latest state as its runs leave it; status is idle, busy,
    // interrupted or error.
    up: sql(`
      create table threads (
        thread_id uuid primary key,
        owner text not null,
        metadata jsonb not null default '{}',
        status text not null default 'idle' check (status in ('idle', 'busy', 'interrupted', 'error')),
        config jsonb not null default '{}',
        "values" jsonb,
        interrupts jsonb not null default '{}',
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now());
      create index threads_created on threads (created_at);
      create index threads_metadata on threads using gin (metadata jsonb_path_ops);`),
  },
];
