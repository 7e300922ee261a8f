import type pg from "pg";

/**
 * A deterministic generator of Harbor Supply Co.'s sample business data (regions, customers, products, orders
 * for 2025). The same seed always yields the same rows, so answers in docs and tests are stable.
 */
export const BUSINESS_SEED = 20250101;

/** mulberry32: a tiny, well-known 32-bit PRNG; enough for sample data, not for anything secret. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REGIONS = [
  { name: "North", manager: "Avery Lindqvist" },
  { name: "South", manager: "Marisol Okafor" },
  { name: "East", manager: "Tomasz Reyes" },
  { name: "West", manager: "Priya Halvorsen" },
];

const PRODUCTS: ReadonlyArray<[string, string, number]> = [
  ["Steel Shelving Unit", "warehouse", 249.0],
  ["Pallet Jack", "warehouse", 899.0],
  ["Stretch Wrap Roll", "warehouse", 24.5],
  ["Safety Gloves (box)", "safety", 18.75],
  ["Hard Hat", "safety", 32.0],
  ["High-Visibility Vest", "safety", 14.2],
  ["First Aid Kit", "safety", 65.0],
  ["Printer Paper (case)", "office", 42.0],
  ["Ergonomic Chair", "office", 389.0],
  ["Standing Desk", "office", 610.0],
  ["Label Printer", "office", 155.0],
  ["Cordless Drill", "tools", 179.0],
  ["Socket Set", "tools", 96.5],
  ["Tape Measure", "tools", 12.9],
  ["Work Bench", "tools", 420.0],
  ["Floor Cleaner (5 L)", "cleaning", 27.4],
  ["Industrial Mop Kit", "cleaning", 58.0],
  ["Trash Bags (roll)", "cleaning", 16.3],
];

const NAME_PARTS = {
  first: [
    "Blue",
    "Granite",
    "Maple",
    "Harbor",
    "Summit",
    "Cedar",
    "Iron",
    "Silver",
    "Prairie",
    "Coastal",
    "Northern",
    "Red",
  ],
  second: [
    "Logistics",
    "Builders",
    "Foods",
    "Clinics",
    "Motors",
    "Retail",
    "Labs",
    "Hotels",
    "Energy",
    "Print",
  ],
  suffix: ["Inc", "LLC", "Co", "Group", "Ltd"],
};

const SEGMENTS = ["smb", "smb", "smb", "mid-market", "mid-market", "enterprise"] as const;
// Later months see more orders, so month-over-month growth is visible in the samples.
const STATUS_WEIGHTS: ReadonlyArray<[string, number]> = [
  ["delivered", 0.72],
  ["shipped", 0.1],
  ["placed", 0.06],
  ["cancelled", 0.06],
  ["refunded", 0.06],
];

export interface BusinessData {
  regions: { id: number; name: string; manager: string }[];
  customers: { id: number; name: string; segment: string; region_id: number; signup_date: string }[];
  products: { id: number; name: string; category: string; unit_price: number }[];
  orders: { id: number; customer_id: number; ordered_at: string; status: string }[];
  order_items: { order_id: number; product_id: number; quantity: number; unit_price: number }[];
}

export function generateBusinessData(seed = BUSINESS_SEED): BusinessData {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const regions = REGIONS.map((r, i) => ({ id: i + 1, ...r }));
  const products = PRODUCTS.map(([name, category, unit_price], i) => ({
    id: i + 1,
    name,
    category,
    unit_price,
  }));
  const customers: BusinessData["customers"] = [];
  const usedNames = new Set<string>();
  while (customers.length < 48) {
    const name = `${pick(NAME_PARTS.first)} ${pick(NAME_PARTS.second)} ${pick(NAME_PARTS.suffix)}`;
    if (usedNames.has(name)) continue;
    usedNames.add(name);
    const month = 1 + Math.floor(rand() * 12);
    customers.push({
      id: customers.length + 1,
      name,
      segment: pick(SEGMENTS),
      region_id: 1 + Math.floor(rand() * regions.length),
      signup_date: `2024-${String(month).padStart(2, "0")}-${String(1 + Math.floor(rand() * 28)).padStart(2, "0")}`,
    });
  }
  const orders: BusinessData["orders"] = [];
  const items: BusinessData["order_items"] = [];
  for (let month = 1; month <= 12; month++) {
    const count = 30 + month * 3 + Math.floor(rand() * 8);
    for (let n = 0; n < count; n++) {
      const customer = pick(customers);
      const id = orders.length + 1;
      let roll = rand();
      let status = "delivered";
      for (const [s, w] of STATUS_WEIGHTS) {
        if (roll < w) {
          status = s;
          break;
        }
        roll -= w;
      }
      const day = 1 + Math.floor(rand() * 28);
      orders.push({
        id,
        customer_id: customer.id,
        ordered_at: `2025-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`,
        status,
      });
      const lines = 1 + Math.floor(rand() * 3);
      const chosen = new Set<number>();
      const scale = customer.segment === "enterprise" ? 4 : customer.segment === "mid-market" ? 2 : 1;
      for (let l = 0; l < lines; l++) {
        const product = pick(products);
        if (chosen.has(product.id)) continue;
        chosen.add(product.id);
        items.push({
          order_id: id,
          product_id: product.id,
          quantity: scale * (1 + Math.floor(rand() * 12)),
          unit_price: product.unit_price,
        });
      }
    }
  }
  return { regions, customers, products, orders, order_items: items };
}

async function insertRows(client: pg.PoolClient, table: string, rows: readonly object[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  // One statement per table through json_populate_recordset keeps the seed fast without a bulk-load library.
  await client.query(
    `insert into demo.${table} (${columns.join(", ")})
     select ${columns.join(", ")} from json_populate_recordset(null::demo.${table}, $1::json)
     on conflict do nothing`,
    [JSON.stringify(rows)],
  );
}

export async function seedBusinessData(client: pg.PoolClient): Promise<void> {
  const data = generateBusinessData();
  await insertRows(client, "regions", data.regions);
  await insertRows(client, "customers", data.customers);
  await insertRows(client, "products", data.products);
  await insertRows(client, "orders", data.orders);
  await insertRows(client, "order_items", data.order_items);
}
