import { createHash, randomBytes } from "node:crypto";
import type pg from "pg";
import { InputError, NotFoundError } from "../core/errors.js";

/**
 * Who may do what on `keel serve`. A submitter submits and follows its own tasks; a reviewer decides approvals
 * (and reads any task, to judge what it decides on); an admin does everything.
 */
export const ROLES = ["submitter", "reviewer", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** The caller of one request: the identity its actions are recorded under, and its role. */
export interface Caller {
  identity: string;
  role: Role;
  /** The key it authenticated with; null for the local user of a server without keys. */
  keyId: string | null;
}

export interface KeyRow {
  id: string;
  name: string;
  role: Role;
  created_by: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const KEY_PREFIX = "keel_";
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$/;

const hashOf = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * Makes a key and stores only its hash. The secret is returned once, here; nobody can read it back. Its name is
 * the identity recorded for everything done with it, so two keys with one name (a rotation) are one person.
 */
export async function createKey(
  db: pg.Pool,
  opts: { role: Role; name?: string; createdBy: string },
): Promise<{ key: string; row: KeyRow }> {
  if (!ROLES.includes(opts.role))
    throw new InputError(`There is no role "${opts.role}"; use one of ${ROLES.join(", ")}.`);
  const id = randomBytes(4).toString("hex");
  const name = opts.name ?? `${opts.role}-${id}`;
  if (!NAME.test(name))
    throw new InputError(
      `A key's name is the identity its actions are recorded under: letters, digits and _ . @ -, at most 63, starting with a letter or digit; "${name}" is not one.`,
    );
  const key = `${KEY_PREFIX}${id}_${randomBytes(24).toString("base64url")}`;
  const { rows } = await db.query<KeyRow>(
    `insert into api_keys (id, name, role, key_hash, created_by) values ($1, $2, $3, $4, $5)
     returning id, name, role, created_by, created_at, last_used_at, revoked_at`,
    [id, name, opts.role, hashOf(key), opts.createdBy],
  );
  return { key, row: rows[0]! };
}

export async function listKeys(db: pg.Pool, includeRevoked = false): Promise<KeyRow[]> {
  const { rows } = await db.query<KeyRow>(
    `select id, name, role, created_by, created_at, last_used_at, revoked_at from api_keys
      where $1 or revoked_at is null order by created_at`,
    [includeRevoked],
  );
  return rows;
}

/** Revokes a key by its id (the 8 characters after `keel_`); requests with it are refused from then on. */
export async function revokeKey(db: pg.Pool, id: string): Promise<KeyRow> {
  const { rows } = await db.query<KeyRow>(
    `update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1
     returning id, name, role, created_by, created_at, last_used_at, revoked_at`,
    [id],
  );
  if (!rows[0]) throw new NotFoundError(`No key has id "${id}"; keel keys list shows them.`);
  return rows[0];
}

export async function activeKeyCount(db: pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "select count(*)::int as n from api_keys where revoked_at is null",
  );
  return rows[0]?.n ?? 0;
}

/** The caller a secret belongs to, or null for a key that does not exist or was revoked. */
export async function authenticate(db: pg.Pool, secret: string): Promise<Caller | null> {
  if (!secret.startsWith(KEY_PREFIX) || secret.length > 200) return null;
  const { rows } = await db.query<{ id: string; name: string; role: Role; stale: boolean }>(
    `select id, name, role, last_used_at is null or last_used_at < now() - interval '1 minute' as stale
       from api_keys where key_hash = $1 and revoked_at is null`,
    [hashOf(secret)],
  );
  const row = rows[0];
  if (!row) return null;
  // last_used_at is kept to the minute, so a busy key costs one read per request, not a write.
  if (row.stale) await db.query("update api_keys set last_used_at = now() where id = $1", [row.id]);
  return { identity: row.name, role: row.role, keyId: row.id };
}
