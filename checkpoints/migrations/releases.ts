import { sql, type Migration } from "./sql.js";

/**
 * Releases: named, immutable, versioned bundles of what changes an agent's behaviour (model, prompts, policy,
 * limits, graph), and the release each task ran on.
 */
export const RELEASES_MIGRATIONS: Migration[] = [
  {
    id: 23,
    name: "releases, and the release each task runs on",
    // A release never changes once made: the trigger refuses any update or delete, so a task's release_id always
    // names what it ran on. digest is the SHA-256 of the canonical spec: the same bundle made twice under one name
    // is the same version. A task's release is set when it is submitted to one (named, or the one in force:
    // release_pinned) or, when none was, by each worker that claims it (the release of that worker's own
    // configuration, so the record names the configuration that last ran it).
    up: sql(`
      create table releases (
        id uuid primary key,
        name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
        version int not null check (version > 0),
        description text not null default '',
        spec jsonb not null,
        digest text not null,
        source text not null,
        created_by text not null,
        created_at timestamptz not null default now(),
        unique (name, version),
        unique (name, digest));
      create function keel_release_immutable() returns trigger language plpgsql as $$
        begin
          raise exception 'release % is immutable: make a new version instead', old.name || '@' || old.version
            using errcode = 'KR001';
        end $$;
      create trigger releases_immutable before update or delete on releases
        for each row execute function keel_release_immutable();
      alter table tasks add column release_id uuid references releases(id);
      alter table tasks add column release_pinned boolean not null default false;
      create index tasks_release on tasks (release_id, created_at) where parent_id is null;`),
  },
  {
    id: 24,
    name: "rollouts: a candidate release moved through steps, its events, and the stable release",
    // release_channels.stable is the release a task submitted to none runs on when no rollout is in progress.
    // At most one rollout is active (running or paused) at a time: the partial unique index. A rollout's salt
    // makes its assignment independent of every other rollout's.
    up: sql(`
      create table release_channels (
        name text primary key check (name = 'stable'),
        release_id uuid not null references releases(id),
        updated_at timestamptz not null default now());
      create table rollouts (
        id uuid primary key,
        baseline_id uuid not null references releases(id),
        candidate_id uuid not null references releases(id),
        assignment_key text not null check (assignment_key in ('submitter', 'workflow', 'task')),
        steps jsonb not null,
        step int not null default 0,
        status text not null check (status in ('running', 'paused', 'promoted', 'aborted')),
        analysis jsonb not null default '{}',
        salt text not null,
        reason text,
        created_by text not null,
        created_at timestamptz not null default now(),
        step_started_at timestamptz not null default now(),
        ended_at timestamptz,
        check (baseline_id <> candidate_id));
      create unique index rollouts_one_active on rollouts ((true)) where status in ('running', 'paused');
      create table rollout_events (
        id bigserial primary key,
        rollout_id uuid not null references rollouts(id),
        at timestamptz not null default now(),
        kind text not null,
        step int not null,
        actor text not null,
        reason text not null,
        details jsonb not null default '{}');
      create index rollout_events_rollout on rollout_events (rollout_id, id);`),
  },
  {
    id: 25,
    name: "shadow runs: a candidate that runs beside the primary with its effects simulated",
    // A shadow task is a root task of its own (workflow 'shadow', on the queue 'shadow'), pinned to the candidate
    // and linked to the primary it shadows; its side-effecting calls are recorded in simulated_effects, never
    // executed. At most one shadow is active at a time.
    up: sql(`
      create table shadows (
        id uuid primary key,
        candidate_id uuid not null references releases(id),
        sample_percent numeric not null check (sample_percent > 0 and sample_percent <= 100),
        status text not null check (status in ('active', 'stopped')),
        salt text not null,
        created_by text not null,
        created_at timestamptz not null default now(),
        stopped_at timestamptz);
      create unique index shadows_one_active on shadows ((true)) where status = 'active';
      alter table tasks add column shadow_of uuid references tasks(id);
      create index tasks_shadow_of on tasks (shadow_of) where shadow_of is not null;
      create table simulated_effects (
        id bigserial primary key,
        thread_id text not null,
        tool_call_id text not null,
        agent text not null,
        tool text not null,
        args jsonb not null,
        decision text not null,
        reasons text[] not null,
        created_at timestamptz not null default now(),
        unique (thread_id, tool_call_id));`),
  },
  {
    id: 26,
    name: "every release is a version of an assistant of the Agent Server API",
    // A release NAME is the assistant whose id is md5('keel release NAME') and each of its versions is a version
    // of that assistant (metadata.release, metadata.release_id), made by a trigger so that no writer can skip it.
    // A new release version is the assistant's version in force; its configuration, context and name stay as the
    // assistant's users last set them. Releases made before this migration get theirs now, in version order.
    up: sql(`
      create function keel_release_assistant_of(r releases) returns void language plpgsql as $$
        declare
          aid uuid := md5('keel release ' || r.name)::uuid;
        begin
          insert into assistants as a (assistant_id, graph_id, name, description, metadata, created_at, updated_at)
          values (aid, r.spec->>'graph', r.name, nullif(r.description, ''),
                  jsonb_build_object('created_by', r.created_by, 'release', r.name || '@' || r.version,
                                     'release_id', r.id),
                  r.created_at, r.created_at)
          on conflict (assistant_id) do update set
            version = (select coalesce(max(v.version), 0) + 1 from assistant_versions v where v.assistant_id = aid),
            graph_id = excluded.graph_id,
            description = coalesce(excluded.description, a.description),
            metadata = a.metadata || excluded.metadata,
            updated_at = excluded.updated_at;
          insert into assistant_versions (assistant_id, version, graph_id, name, description, config, context,
                                          metadata, created_at)
          select assistant_id, version, graph_id, name, description, config, context, metadata, updated_at
            from assistants where assistant_id = aid;
        end $$;
      create function keel_release_assistant() returns trigger language plpgsql as $$
        begin
          perform keel_release_assistant_of(new);
          return new;
        end $$;
      create trigger releases_assistant after insert on releases
        for each row execute function keel_release_assistant();
      do $$
        declare r releases;
        begin
          for r in select * from releases order by name, version loop
            perform keel_release_assistant_of(r);
          end loop;
        end $$;`),
  },
  {
    id: 27,
    name: "the rollout that assigned a task its release",
    // An abort moves back to the baseline only what its rollout assigned to the candidate, not tasks that named
    // the candidate themselves (keel submit --release, an assistant, a shadow).
    up: sql(`
      alter table tasks add column rollout_id uuid references rollouts(id);
      create index tasks_rollout on tasks (rollout_id) where rollout_id is not null;`),
  },
];
