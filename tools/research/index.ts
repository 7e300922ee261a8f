import { z } from "zod";
import { ToolCallError } from "../../core/errors.js";
import { defineTool, READ_ONLY } from "../contract.js";

/** Full-text search over the knowledge base (Postgres tsvector, ranked). */
export const searchKnowledgeBase = defineTool({
  name: "search_kb",
  description:
    "Search the company knowledge base (policies, runbooks, guides) by keywords. Returns ranked document ids, titles and snippets.",
  input: z.object({
    query: z.string().min(2).max(300).describe("Keywords or a short question"),
    limit: z.number().int().min(1).max(10).default(5).describe("How many hits to return"),
  }),
  output: z.object({
    hits: z.array(
      z.object({
        id: z.string().describe("Document id for read_document"),
        title: z.string().describe("Document title"),
        snippet: z.string().describe("Matching passage"),
        rank: z.number().describe("Relevance; higher is better"),
      }),
    ),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["research"],
  timeoutMs: 5_000,
  async run({ query, limit }, ctx) {
    const pool = await ctx.db();
    // websearch_to_tsquery accepts free text safely; "or" between words keeps recall for rephrased questions.
    const words = query.match(/[\p{L}\p{N}]+/gu) ?? [];
    const { rows } = await pool.query<{ id: string; title: string; snippet: string; rank: number }>(
      `select id, title,
              ts_headline('english', body, q, 'MaxWords=30, MinWords=12') as snippet,
              ts_rank(search, q) as rank
         from kb_documents, websearch_to_tsquery('english', $1) q
        where search @@ q
        order by rank desc, id
        limit $2`,
      [words.join(" or "), limit],
    );
    return {
      hits: rows.map((r) => ({ ...r, snippet: r.snippet.replace(/<\/?b>/g, ""), rank: Number(r.rank) })),
    };
  },
});

export const readDocument = defineTool({
  name: "read_document",
  description: "Read one knowledge base document in full, by the id that search_kb returned.",
  input: z.object({ id: z.string().min(1).max(100).describe("Document id") }),
  output: z.object({
    id: z.string(),
    title: z.string(),
    tags: z.array(z.string()),
    body: z.string(),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["research"],
  timeoutMs: 5_000,
  artifact: (output) => `document:${output.id}`,
  async run({ id }, ctx) {
    const pool = await ctx.db();
    const { rows } = await pool.query<{ id: string; title: string; tags: string[]; body: string }>(
      "select id, title, tags, body from kb_documents where id = $1",
      [id],
    );
    if (!rows[0])
      throw new ToolCallError(`No document has id "${id}". Use search_kb to find document ids.`, "not_found");
    return rows[0];
  },
});

export const RESEARCH_TOOLS = [searchKnowledgeBase, readDocument];
