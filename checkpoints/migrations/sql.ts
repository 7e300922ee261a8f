import type pg from "pg";

/**
 * Keel's own schema, as an append-only list: never edit or reorder an entry that has shipped; add a new one.
 * Each runs once, in its own transaction, recorded in `keel_migrations`.
 */
export interface Migration {
  id: number;
  name: string;
  up: (client: pg.PoolClient) => Promise<void>;
}

export const sql =
  (text: string) =>
  async (client: pg.PoolClient): Promise<void> => {
    await client.query(text);
  };
