import { sql, type Migration } from "./sql.js";

/** Who may call `keel serve`: API keys (stored as hashes only) and the per-key request counters. */
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
];
