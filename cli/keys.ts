import type { KeelConfig } from "../core/config.js";
import { createKey, listKeys, revokeKey, type Role } from "../server/access.js";
import { printJson, withDatabase } from "./common.js";
import { ago } from "./render.js";

/** `keel keys create`: prints the new key once; only its hash is stored. */
export function keysCreateCommand(config: KeelConfig, opts: { role: Role; name?: string; json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const { key, row } = await createKey(db.pool, {
      role: opts.role,
      name: opts.name,
      createdBy: config.user,
    });
    if (opts.json) printJson({ key, id: row.id, name: row.name, role: row.role });
    else {
      console.log(key);
      console.error(
        `key ${row.id}: role ${row.role}, identity "${row.name}". It is shown only now; keep it in a secret store.\nSend it as "Authorization: Bearer <key>" or "x-api-key: <key>". ${config.command} keys revoke ${row.id} withdraws it.`,
      );
    }
    return 0;
  });
}

export function keysListCommand(config: KeelConfig, opts: { all?: boolean; json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const rows = await listKeys(db.pool, opts.all);
    if (opts.json) {
      printJson(rows);
      return 0;
    }
    if (rows.length === 0)
      console.log(
        `no API keys: keel serve accepts only local callers, as ${config.user}; ${config.command} keys create --role admin makes one`,
      );
    for (const k of rows)
      console.log(
        `${k.id}  ${k.role.padEnd(9)}  ${k.name}  created ${ago(k.created_at)} by ${k.created_by} · last used ${ago(k.last_used_at)}${k.revoked_at ? ` · revoked ${ago(k.revoked_at)}` : ""}`,
      );
    return 0;
  });
}

export function keysRevokeCommand(config: KeelConfig, id: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const row = await revokeKey(db.pool, id);
    if (opts.json) printJson(row);
    else console.log(`key ${row.id} (${row.name}, ${row.role}) is revoked; requests with it get 401`);
    return 0;
  });
}
