/**
 * The offline data agent's question-to-SQL rules over the sample dataset's schema: pick a measure, a grouping,
 * filters and an ordering from the words of the question, then join only the tables they need.
 */
export interface SqlPlan {
  sql: string;
  tables: string[];
  measure: string;
  dimension?: string;
}

interface Part {
  expr: string;
  alias: string;
  needs: Alias[];
}
type Alias = "o" | "oi" | "c" | "r" | "p";

const MEASURES: ReadonlyArray<[RegExp, Part]> = [
  [
    /average order (value|size)|\baov\b/,
    {
      expr: "round(sum(oi.quantity * oi.unit_price) / count(distinct o.id), 2)",
      alias: "average_order_value",
      needs: ["oi"],
    },
  ],
  [
    /how many customers|number of customers|count (of )?customers|customer count/,
    { expr: "count(distinct c.id)", alias: "customers", needs: ["c"] },
  ],
  [/\b(units|quantity|items sold|pieces)\b/, { expr: "sum(oi.quantity)", alias: "units", needs: ["oi"] }],
  [
    /\b(revenue|sales|spend|spent|income|turnover|earn\w*|money)\b/,
    { expr: "round(sum(oi.quantity * oi.unit_price), 2)", alias: "revenue", needs: ["oi"] },
  ],
  [
    /\borders?\b|\bhow many\b|\bcount\b|\bnumber of\b/,
    { expr: "count(distinct o.id)", alias: "orders", needs: [] },
  ],
];

const DIMENSIONS: ReadonlyArray<[RegExp, Part & { chronological?: boolean }]> = [
  [
    /\b(month|monthly|months)\b/,
    { expr: "to_char(o.ordered_at, 'YYYY-MM')", alias: "month", needs: [], chronological: true },
  ],
  [
    /\b(quarter|quarterly|quarters)\b/,
    { expr: "'Q' || extract(quarter from o.ordered_at)", alias: "quarter", needs: [], chronological: true },
  ],
  [/\bregions?\b/, { expr: "r.name", alias: "region", needs: ["r"] }],
  [/\bcategor(y|ies)\b/, { expr: "p.category", alias: "category", needs: ["p"] }],
  [/\bsegments?\b/, { expr: "c.segment", alias: "segment", needs: ["c"] }],
  [/\bstatus(es)?\b/, { expr: "o.status", alias: "status", needs: [] }],
  [/\bproducts?\b/, { expr: "p.name", alias: "product", needs: ["p"] }],
  [/\b(customers?|clients?|buyers?|accounts?)\b/, { expr: "c.name", alias: "customer", needs: ["c"] }],
];

const STATUSES = ["placed", "shipped", "delivered", "cancelled", "refunded"];
const REGIONS = ["north", "south", "east", "west"];
const CATEGORIES = ["warehouse", "safety", "office", "tools", "cleaning"];

const JOINS: Record<Exclude<Alias, "o">, { sql: string; after: Alias[]; table: string }> = {
  oi: { sql: "join demo.order_items oi on oi.order_id = o.id", after: [], table: "order_items" },
  p: { sql: "join demo.products p on p.id = oi.product_id", after: ["oi"], table: "products" },
  c: { sql: "join demo.customers c on c.id = o.customer_id", after: [], table: "customers" },
  r: { sql: "join demo.regions r on r.id = c.region_id", after: ["c"], table: "regions" },
};

/** Returns undefined when the question does not mention anything the dataset measures. */
export function questionToSql(question: string, rowLimit = 50): SqlPlan | undefined {
  const q = question.toLowerCase().replace(/canceled/g, "cancelled");
  const measure = MEASURES.find(([re]) => re.test(q))?.[1];
  if (!measure) return undefined;
  // The grouping is the dimension named after "by/per/each" when there is one, else the first one mentioned.
  const grouped = /\b(by|per|each|every|for each|across)\s+(\w+(?:\s+\w+)?)/.exec(q)?.[2] ?? "";
  const dimension =
    DIMENSIONS.find(([re]) => re.test(grouped))?.[1] ??
    DIMENSIONS.find(
      ([re, part]) => re.test(q) && !(part.alias === "customer" && measure.alias === "customers"),
    )?.[1];

  const needs = new Set<Alias>([...measure.needs, ...(dimension?.needs ?? [])]);
  const where: string[] = [];
  const year = /\b(20\d\d)\b/.exec(q)?.[1];
  if (year) where.push(`extract(year from o.ordered_at) = ${year}`);
  // "placed" is mostly the verb ("orders were placed"); it filters only as "placed orders" or "status placed".
  const status = STATUSES.find((s) =>
    s === "placed"
      ? /\bplaced orders\b|\bstatus (?:is |= ?)?'?placed\b/.test(q)
      : new RegExp(`\\b${s}\\b`).test(q),
  );
  if (status && dimension?.alias !== "status") where.push(`o.status = '${status}'`);
  else if (
    measure.alias === "revenue" ||
    measure.alias === "average_order_value" ||
    measure.alias === "units"
  ) {
    where.push("o.status not in ('cancelled', 'refunded')");
  }
  const region = REGIONS.find((r) => new RegExp(`\\b${r}(ern)?\\b`).test(q));
  if (region && dimension?.alias !== "region") {
    where.push(`r.name = '${region[0]!.toUpperCase()}${region.slice(1)}'`);
    needs.add("r");
  }
  const category = CATEGORIES.find((c) => new RegExp(`\\b${c}\\b`).test(q));
  if (category && dimension?.alias !== "category") {
    where.push(`p.category = '${category}'`);
    needs.add("p");
  }
  if (needs.has("r")) needs.add("c");
  if (needs.has("p")) needs.add("oi");

  const top =
    /\b(?:top|first|best|largest|biggest)\s+(\d+)\b/.exec(q) ??
    /\b(\d+)\s+(?:customers|products|regions|categories|clients)\b/.exec(q);
  const ascending = /\b(least|lowest|fewest|worst|smallest|bottom)\b/.test(q);
  const superlative =
    /\b(most|highest|top|best|largest|biggest|least|lowest|fewest|worst|smallest|bottom)\b/.test(q);
  const singular = /\bwhich (region|customer|product|category|segment|month|client)\b(?!s)/.test(q);
  let limit = top ? Number(top[1]) : singular && superlative ? 1 : superlative ? 5 : undefined;
  if (limit !== undefined) limit = Math.min(limit, rowLimit);

  const select = dimension
    ? `${dimension.expr} as ${dimension.alias}, ${measure.expr} as ${measure.alias}`
    : `${measure.expr} as ${measure.alias}`;
  const order = dimension
    ? dimension.chronological && !superlative
      ? `order by ${dimension.alias}`
      : `order by ${measure.alias} ${ascending ? "asc" : "desc"}, ${dimension.alias}`
    : "";
  const joins = (["oi", "p", "c", "r"] as const).filter((a) => needs.has(a)).map((a) => JOINS[a].sql);
  const sql = [
    `select ${select}`,
    "from demo.orders o",
    ...joins,
    where.length ? `where ${where.join(" and ")}` : "",
    dimension ? `group by ${dimension.alias}` : "",
    order,
    limit !== undefined && dimension ? `limit ${limit}` : "",
  ]
    .filter(Boolean)
    .join("\n");
  const tables = [
    "orders",
    ...(["oi", "p", "c", "r"] as const).filter((a) => needs.has(a)).map((a) => JOINS[a].table),
  ];
  return { sql, tables, measure: measure.alias, dimension: dimension?.alias };
}
