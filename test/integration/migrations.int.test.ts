import pg from "pg";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { MIGRATIONS, migrate } from "../../checkpoints/migrations/index.js";
import { KNOWLEDGE_BASE } from "../../checkpoints/seed/knowledge.js";
import { generateBusinessData } from "../../checkpoints/seed/business.js";

const name = `keel_mig_${randomUUID().replace(/-/g, "").slice(0, 10)}`;
const serverUrl = inject("serverUrl");
const url = Object.assign(new URL(serverUrl), { pathname: `/${name}` }).toString();
const pools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

describe("migrations", () => {
  it("run once even when three processes start together, and seed deterministic data exactly once", async () => {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    for (let i = 0; i < 3; i++) pools.push(new pg.Pool({ connectionString: url, max: 2 }));

    const applied = await Promise.all(pools.map((p) => migrate(p)));
    expect(applied.map((a) => a.length).sort()).toEqual([0, 0, MIGRATIONS.length]);
    expect(await migrate(pools[0]!)).toEqual([]);

    const count = async (sql: string) => Number((await pools[0]!.query<{ n: string }>(sql)).rows[0]!.n);
    expect(await count("select count(*) as n from keel_migrations")).toBe(MIGRATIONS.length);
    expect(await count("select count(*) as n from kb_documents")).toBe(KNOWLEDGE_BASE.length);
    const data = generateBusinessData();
    expect(await count("select count(*) as n from demo.orders")).toBe(data.orders.length);
    expect(await count("select count(*) as n from demo.order_items")).toBe(data.order_items.length);
  });

  it("generates the same business data from the same seed", () => {
    expect(generateBusinessData()).toEqual(generateBusinessData());
    expect(generateBusinessData(1)).not.toEqual(generateBusinessData());
  });

  it("keeps ids unique and gapless across the area files, in the order they run", () => {
    expect(MIGRATIONS.map((m) => m.id)).toEqual(Array.from({ length: MIGRATIONS.length }, (_, i) => i + 1));
  });
});
