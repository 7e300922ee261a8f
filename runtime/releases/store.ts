import { createHash, randomUUID } from "node:crypto";
import diff from "microdiff";
import type pg from "pg";
import { InputError, NotFoundError } from "../../core/errors.js";
import { inTransaction } from "../../core/transaction.js";
import { digestOf, ReleaseSpec } from "./spec.js";

/** A stored release: one immutable version of a named bundle. */
export interface ReleaseRow {
  id: string;
  name: string;
  version: number;
  description: string;
  spec: ReleaseSpec;
  digest: string;
  source: string;
  created_by: string;
  created_at: Date;
}

/** A release's name: letters, digits, _ . - (up to 63), starting with a letter or digit. */
export const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** The name under which each process's own configuration is recorded when a task names no release. */
export const CONFIG_RELEASE = "config";

/** `name@version`, the way people and logs name a release. */
export const releaseLabel = (r: Pick<ReleaseRow, "name" | "version">) => `${r.name}@${r.version}`;

// A transaction-scoped lock per release name, so that two creates of one name number their versions in turn.
const NAME_LOCK_CLASS = 0x6b72; // "kr"

/**
 * Stores a spec as the next version of `name`, or returns the version that already holds the same spec (same
 * digest): making a release twice from one bundle is one release.
 */
export async function createRelease(
  pool: pg.Pool,
  input: { name: string; spec: ReleaseSpec; description?: string; source: string; createdBy: string },
): Promise<{ release: ReleaseRow; created: boolean }> {
  if (!RELEASE_NAME.test(input.name))
    throw new InputError(
      `"${input.name}" is not a release name: use letters, digits, _ . - (up to 63), starting with a letter or digit.`,
    );
  const spec = ReleaseSpec.parse(input.spec);
  const digest = digestOf(spec);
  return inTransaction(pool, async (client) => {
    await client.query("select pg_advisory_xact_lock($1, hashtext($2))", [NAME_LOCK_CLASS, input.name]);
    const same = await client.query<ReleaseRow>("select * from releases where name = $1 and digest = $2", [
      input.name,
      digest,
    ]);
    if (same.rows[0]) return { release: same.rows[0], created: false };
    const { rows } = await client.query<ReleaseRow>(
      `insert into releases (id, name, version, description, spec, digest, source, created_by)
       select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7 from releases where name = $2
       returning *`,
      [
        randomUUID(),
        input.name,
        input.description ?? "",
        JSON.stringify(spec),
        digest,
        input.source,
        input.createdBy,
      ],
    );
    return { release: rows[0]!, created: true };
  });
}

/** A release's id (a uuid). */
export const RELEASE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The id of release NAME's assistant on the Agent Server API, whose versions are NAME's versions (migration 26
 * makes it with each release: the md5 of "keel release NAME", as a uuid).
 */
export function releaseAssistantId(name: string): string {
  const hex = createHash("md5").update(`keel release ${name}`).digest("hex");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

/** A release by `name` (its latest version), `name@version`, or id. */
export async function getRelease(db: Pick<pg.Pool, "query">, ref: string): Promise<ReleaseRow> {
  if (RELEASE_ID.test(ref)) {
    const { rows } = await db.query<ReleaseRow>("select * from releases where id = $1", [ref]);
    if (!rows[0])
      throw new NotFoundError(`No release has id ${ref}. keel release list shows the releases there are.`);
    return rows[0];
  }
  const match = /^([^@]+)(?:@(\d+))?$/.exec(ref);
  if (!match || !RELEASE_NAME.test(match[1]!))
    throw new InputError(
      `"${ref}" does not name a release: give NAME (its latest version), NAME@VERSION, or a release id.`,
    );
  const [, name, version] = match;
  const { rows } = await db.query<ReleaseRow>(
    `select * from releases where name = $1 and ($2::int is null or version = $2) order by version desc limit 1`,
    [name, version ?? null],
  );
  if (!rows[0]) {
    const { rows: others } = await db.query<{ version: number }>(
      "select version from releases where name = $1 order by version",
      [name],
    );
    throw new NotFoundError(
      others.length > 0
        ? `Release ${name} has no version ${version}: it has ${others.map((o) => o.version).join(", ")}.`
        : `There is no release named ${name}. keel release list shows the releases there are; keel release create ${name} makes one.`,
    );
  }
  return rows[0];
}

/** Every release, newest first (each name's versions together), with how many tasks ran on each. */
export async function listReleases(
  db: pg.Pool,
  filter: { name?: string } = {},
): Promise<(ReleaseRow & { tasks: number })[]> {
  const { rows } = await db.query<ReleaseRow & { tasks: number }>(
    `select r.*, (select count(*)::int from tasks t where t.release_id = r.id and t.parent_id is null) as tasks
       from releases r where ($1::text is null or r.name = $1) order by r.created_at desc, r.version desc`,
    [filter.name ?? null],
  );
  return rows;
}

/** One difference between two releases' specs: where, and the value on each side (absent: undefined). */
export interface ReleaseChange {
  path: string;
  kind: "added" | "removed" | "changed";
  from?: unknown;
  to?: unknown;
}

/** What changes from release `a` to release `b`, field by field. */
export function diffReleases(a: ReleaseRow, b: ReleaseRow): ReleaseChange[] {
  return diff(a.spec, b.spec).map((d) => ({
    path: d.path
      .map((p) => (typeof p === "number" ? `[${p}]` : p))
      .join(".")
      .replaceAll(".[", "["),
    kind: d.type === "CREATE" ? "added" : d.type === "REMOVE" ? "removed" : "changed",
    ...(d.type !== "CREATE" ? { from: d.oldValue as unknown } : {}),
    ...(d.type !== "REMOVE" ? { to: d.value as unknown } : {}),
  }));
}
