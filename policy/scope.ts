import { z } from "zod";

/**
 * The task boundary of a deployment: what kinds of request it serves (allowed intents) and what it never
 * does whatever the wording (prohibited actions). Keyword and pattern based, so it is predictable and cheap;
 * the defaults describe the bundled workspace and a policy file replaces them.
 */
export const Intent = z
  .object({
    name: z.string().describe("Intent name, reported when it matches"),
    keywords: z.array(z.string().min(1)).min(1).describe("Words or phrases; any one present matches"),
  })
  .strict();

export const ProhibitedAction = z
  .object({
    name: z.string().describe("Reported as the reason a request was blocked"),
    patterns: z.array(z.string().min(1)).min(1).describe("Regular expressions (case-insensitive)"),
  })
  .strict();

export const ScopePolicy = z
  .object({
    allowed_intents: z.array(Intent).describe("A request must match at least one"),
    prohibited_actions: z.array(ProhibitedAction).describe("A request matching any is blocked"),
  })
  .strict();
export type ScopePolicy = z.infer<typeof ScopePolicy>;

export const DEFAULT_SCOPE: ScopePolicy = {
  allowed_intents: [
    {
      name: "knowledge",
      keywords: [
        "policy",
        "policies",
        "runbook",
        "handbook",
        "guide",
        "guideline",
        "procedure",
        "process",
        "document",
        "documentation",
        "knowledge base",
        "says",
        "explain",
        "summarize",
        "summarise",
        "describe",
        "what is",
        "what are",
        "what does",
        "how do",
        "how does",
        "how should",
        "how long",
        "how much",
        "when should",
        "why",
        "who",
        "rule",
        "incident",
        "onboarding",
        "security",
        "refund",
        "expense",
        "vacation",
        "leave",
        "sla",
        "escalation",
      ],
    },
    {
      name: "data",
      keywords: [
        "revenue",
        "order",
        "orders",
        "customer",
        "customers",
        "product",
        "products",
        "region",
        "regions",
        "sales",
        "sold",
        "count",
        "how many",
        "top",
        "average",
        "total",
        "which",
        "list",
        "table",
        "tables",
        "trend",
        "monthly",
        "quarter",
        "segment",
        "category",
        "categories",
        "refunded",
        "spend",
        "data",
      ],
    },
    {
      name: "computation",
      keywords: [
        "calculate",
        "compute",
        "prime",
        "fibonacci",
        "factorial",
        "sum",
        "percent",
        "percentage",
        "growth",
        "convert",
        "square",
        "root",
        "average of",
        "median",
        "multiply",
        "divide",
        "plus",
        "minus",
        "number",
        "numbers",
        "share",
        "ratio",
        "javascript",
        "program",
        "code",
      ],
    },
    {
      name: "messaging",
      keywords: ["email", "e-mail", "mail", "send", "notify", "message", "remind", "inform", "draft", "@"],
    },
  ],
  prohibited_actions: [
    {
      name: "destructive_data_change",
      patterns: [
        "\\b(?:drop|truncate|alter)\\b[^.]{0,20}\\b(?:tables?|schemas?|databases?)\\b",
        "\\b(?:delete|erase|wipe|purge|remove)\\b[^.]{0,30}\\b(?:all|every|the)\\b[^.]{0,20}\\b(?:orders|customers|products|records|rows|data|tables|database|accounts)\\b",
        "\\b(?:update|change|modify|set)\\b[^.]{0,30}\\b(?:prices?|balances?|records|rows)\\b[^.]{0,20}\\bin the database\\b",
      ],
    },
    {
      name: "money_movement",
      patterns: [
        "\\b(?:wire|transfer|send|pay|move)\\b[^.]{0,30}(?:\\$|€|£|\\b(?:usd|eur|gbp|dollars|euros|funds|money|payment)\\b)",
        "\\b(?:issue|process|approve)\\b[^.]{0,20}\\brefunds?\\b[^.]{0,20}\\b(?:to|for)\\b",
      ],
    },
    {
      name: "credential_access",
      patterns: [
        "\\b(?:reset|change|give me|show me|reveal|share|send|tell me|leak|dump)\\s+(?:(?:the|my|our|his|her|their|all|an?)\\s+)?(?:(?:admin|root|database|db|production|prod|service)\\s+)?(?:passwords?|api keys?|credentials|secrets?|access tokens?|tokens?)\\b",
      ],
    },
    {
      name: "mass_messaging",
      patterns: [
        "\\b(?:email|message|notify|send)\\b[^.]{0,30}\\b(?:all|every|each)\\s+(?:of\\s+(?:our|the)\\s+)?(?:customers?|users?|employees?|contacts?|people|staff|clients?)\\b",
      ],
    },
    {
      name: "purchase",
      patterns: [
        "\\b(?:order|buy|purchase|book|reserve)\\s+(?:me\\s+|us\\s+)?(?:a|an|some|two|three|tickets?|flights?|hotels?|tables?)\\b",
      ],
    },
    {
      name: "disable_controls",
      patterns: [
        "\\b(?:disable|turn off|switch off|deactivate|bypass)\\b[^.]{0,30}\\b(?:audit|logging|guardrails?|approvals?|monitoring|security)\\b",
      ],
    },
  ],
};

export type ScopeVerdict = { ok: true; intents: string[] } | { ok: false; reason: string; detail: string };

const has = (text: string, keyword: string) =>
  /^\w/.test(keyword)
    ? new RegExp(`\\b${keyword.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`, "i").test(text)
    : text.includes(keyword);

/** Whether a request is inside the task boundary: no prohibited action, and at least one allowed intent. */
export function checkScope(request: string, scope: ScopePolicy): ScopeVerdict {
  for (const action of scope.prohibited_actions) {
    const hit = action.patterns.map((p) => new RegExp(p, "i").exec(request)).find(Boolean);
    if (hit) return { ok: false, reason: `prohibited_action:${action.name}`, detail: hit[0] };
  }
  const intents = scope.allowed_intents
    .filter((i) => i.keywords.some((k) => has(request, k)))
    .map((i) => i.name);
  if (intents.length === 0) {
    return {
      ok: false,
      reason: "out_of_scope",
      detail: `matches none of the allowed intents (${scope.allowed_intents.map((i) => i.name).join(", ")})`,
    };
  }
  return { ok: true, intents };
}
