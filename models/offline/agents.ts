import type { BaseMessage } from "@langchain/core/messages";
import { writeProgram } from "./code.js";
import { questionToSql } from "./sql.js";
import {
  capitalize,
  emails,
  findingsFromContext,
  keywords,
  parseBrief,
  rowsFromContext,
  sentences,
} from "./text.js";

/** What the offline model decides in one sub-agent turn: tool calls to make, or a final answer. */
export interface Turn {
  content: string;
  calls: { name: string; args: Record<string, unknown> }[];
}

interface Observation {
  tool: string;
  ok: boolean;
  value: unknown;
  text: string;
}

/** The task brief and every tool result so far, read back from the conversation. */
export interface Transcript {
  taskId: string;
  objective: string;
  context: string;
  observations: Observation[];
}

export function readTranscript(messages: readonly BaseMessage[]): Transcript {
  const brief = messages.find((m) => m.getType() === "human");
  const text = (m: BaseMessage) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content));
  const { taskId, objective, context } = parseBrief(brief ? text(brief) : "");
  const observations = messages
    .filter((m) => m.getType() === "tool")
    .map((m) => {
      const raw = text(m);
      const ok = (m as { status?: string }).status !== "error";
      let value: unknown = raw;
      try {
        value = JSON.parse(raw);
      } catch {
        // an error message, kept as text
      }
      return { tool: (m as { name?: string }).name ?? "", ok, value, text: raw };
    });
  return { taskId, objective, context, observations };
}

const last = (t: Transcript, tool: string) => [...t.observations].reverse().find((o) => o.tool === tool);
const done = (content: string): Turn => ({ content, calls: [] });

/** Words that name the kind of document or the question, not what the question is about. */
const GENERIC = new Set(
  `policy policies runbook handbook guide document documentation rule rules process procedure kept keep stored store
  long period according company team teams state states mention mentions`.split(/\s+/),
);
const stem = (w: string) => w.replace(/(?:'s|s)$/, "");

/** A question that asks for one kind of fact, and what a sentence stating that fact contains. */
const ASKS: readonly { asks: RegExp; what: string; fact: RegExp }[] = [
  {
    asks: /\bhow long\b|\bretention period\b|\bhow many (?:days|weeks|months|years|hours|minutes)\b/i,
    what: "how long",
    fact: /\b\d[\d,.]*\s*(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|business days?)\b|\b(?:one|two|three|a|an) (?:hour|day|week|month|year)s?\b/i,
  },
  { asks: /\bhow much\b/i, what: "how much", fact: /\b\d[\d,.]*\s*(?:USD|EUR|GBP|%|percent)\b|[$€£]\s*\d/i },
];

/**
 * The answer to a question about something in particular, or undefined to summarise the document. What the
 * question is about (its words that are not in the title and not generic) must be in the document, and a question
 * that asks for a fact (how long, how much) is answered only by a sentence that states one about it; otherwise the
 * offline model says it cannot answer rather than hand back sentences that do not answer it.
 */
function answerFrom(objective: string, doc: { id: string; title: string; body: string }): string | undefined {
  const titled = new Set(keywords(doc.title).map(stem));
  const subject = keywords(objective).filter((w) => !GENERIC.has(w) && !titled.has(stem(w)));
  const about = new Set(subject.map(stem));
  const clauses = sentences(doc.body).flatMap((s) => s.split(/;\s+/));
  const score = (c: string) => keywords(c).filter((w) => about.has(stem(w))).length;
  const source = `${doc.title} (${doc.id})`;
  if (subject.length > 0 && !clauses.some((c) => score(c) > 0))
    return `I cannot answer this offline: ${source} does not mention ${subject.join(" ")}.`;
  const asked = ASKS.find((a) => a.asks.test(objective));
  if (!asked) return undefined;
  const stating = clauses.filter((c) => asked.fact.test(c)).map((c) => ({ c, s: score(c) }));
  const best = Math.max(0, ...stating.map((x) => x.s));
  const chosen = stating.filter((x) => x.s === best && (best > 0 || subject.length === 0));
  if (chosen.length === 0)
    return `I cannot answer this offline: ${source} does not say ${asked.what} for ${subject.join(" ")}.`;
  const text = chosen.map((x) => capitalize(x.c.replace(/[.;]?$/, "."))).join(" ");
  return `${source}: ${text}`;
}

export function researchTurn(t: Transcript): Turn {
  const search = last(t, "search_kb");
  if (!search)
    return {
      content: "",
      calls: [{ name: "search_kb", args: { query: keywords(t.objective).join(" "), limit: 3 } }],
    };
  if (!search.ok) {
    // A failed search is not an empty one: try once more, then say it failed.
    const failures = t.observations.filter((o) => o.tool === "search_kb" && !o.ok).length;
    if (failures < 2)
      return {
        content: "",
        calls: [{ name: "search_kb", args: { query: keywords(t.objective).join(" "), limit: 3 } }],
      };
    return done(`The knowledge base search failed, so I could not look this up: ${search.text}`);
  }
  const hits = (search.value as { hits?: { id: string; title: string }[] }).hits ?? [];
  if (hits.length === 0) return done(`I found nothing in the knowledge base about "${t.objective}".`);
  const doc = last(t, "read_document");
  if (!doc) return { content: "", calls: [{ name: "read_document", args: { id: hits[0]!.id } }] };
  if (!doc.ok) return done(`I could not read ${hits[0]!.id}: ${doc.text}`);
  const { id, title, body } = doc.value as { id: string; title: string; body: string };
  const focused = answerFrom(t.objective, { id, title, body });
  if (focused) return done(focused);
  const wanted = new Set(keywords(t.objective));
  const ranked = sentences(body)
    .map((s, i) => ({ s, i, score: keywords(s).filter((w) => wanted.has(w)).length }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, 3)
    .sort((a, b) => a.i - b.i);
  return done(`${title} (${id}): ${ranked.map((r) => r.s).join(" ")}`);
}

function formatRows(rows: Record<string, unknown>[]): string {
  return rows
    .slice(0, 12)
    .map((r) =>
      Object.values(r)
        .map((v) =>
          typeof v === "number" || /^-?\d+(\.\d+)?$/.test(String(v))
            ? Number(v).toLocaleString("en-US")
            : String(v),
        )
        .join(": "),
    )
    .join("; ");
}

export function dataTurn(t: Transcript, rowLimit: number): Turn {
  const plan = questionToSql(t.objective, rowLimit);
  const tables = last(t, "list_tables");
  if (!tables) return { content: "", calls: [{ name: "list_tables", args: {} }] };
  if (!plan) {
    const names = ((tables.value as { tables?: { name: string }[] }).tables ?? [])
      .map((x) => x.name)
      .join(", ");
    return done(`I could not map "${t.objective}" onto the dataset (tables: ${names}).`);
  }
  if (!last(t, "describe_table")) {
    return { content: "", calls: plan.tables.map((table) => ({ name: "describe_table", args: { table } })) };
  }
  const query = last(t, "run_sql");
  if (!query) return { content: "", calls: [{ name: "run_sql", args: { sql: plan.sql } }] };
  if (!query.ok) return done(`The query failed: ${query.text}`);
  const { rows, truncated } = query.value as { rows: Record<string, unknown>[]; truncated: boolean };
  if (rows.length === 0) return done(`No rows match "${t.objective}".`);
  const what = plan.dimension ? `${plan.measure} by ${plan.dimension}` : plan.measure;
  return done(
    `${capitalize(what)} (${rows.length} row${rows.length === 1 ? "" : "s"}${truncated ? ", truncated" : ""}): ${formatRows(rows)}.`,
  );
}

/** A computed value in words: shares and growth as percentages, lists joined, other objects as key: value. */
function describeValue(value: unknown): string {
  const fmt = (v: unknown) => (typeof v === "number" ? v.toLocaleString("en-US") : JSON.stringify(v));
  if (Array.isArray(value)) return value.map(fmt).join(", ");
  if (!value || typeof value !== "object") return fmt(value);
  const v = value as Record<string, unknown>;
  const label = (row: Record<string, unknown>) => String(Object.values(row)[0]);
  if (Array.isArray(v.shares)) {
    const rows = v.shares as Record<string, unknown>[];
    return `${rows.map((r) => `${label(r)} ${fmt(r.share_percent)}%`).join(", ")} (total ${fmt(v.total)})`;
  }
  if (Array.isArray(v.growth)) {
    const rows = v.growth as Record<string, unknown>[];
    return `average growth ${fmt(v.average_growth_percent)}% per period (${rows.map((r) => `${label(r)} ${fmt(r.growth_percent)}%`).join(", ")})`;
  }
  return Object.entries(v)
    .map(([k, x]) => `${k}: ${fmt(x)}`)
    .join(", ");
}

export function codeTurn(t: Transcript): Turn {
  const program = writeProgram(t.objective, rowsFromContext(t.context));
  const run = last(t, "run_javascript");
  if (!program)
    return done(
      `I cannot do this offline: the offline model has no rule for "${t.objective}", and it does not guess. Use a real model (OPENAI_API_KEY / OPENAI_BASE_URL) for it.`,
    );
  if (!run) return { content: "", calls: [{ name: "run_javascript", args: { code: program.code } }] };
  const out = run.value as { ok?: boolean; result?: unknown; error?: string };
  if (!run.ok || !out.ok)
    return done(`The program for ${program.describes} failed: ${out.error ?? run.text}`);
  return done(`Computed ${program.describes}: ${describeValue(out.result)}`);
}

const MESSAGE_WORDS = new Set([
  "email",
  "mail",
  "send",
  "notify",
  "message",
  "remind",
  "inform",
  "ping",
  "findings",
  "results",
  "summary",
  "draft",
  "write",
]);

function subjectFor(objective: string, hasFindings: boolean): string {
  const gist = /\b(?:that|saying|about)\s+(.+)$/i.exec(objective)?.[1];
  const topic =
    gist ??
    keywords(objective.replace(/\S+@\S+/g, ""))
      .filter((w) => !MESSAGE_WORDS.has(w))
      .slice(0, 6)
      .join(" ");
  if (topic) return capitalize(topic).slice(0, 120);
  return hasFindings ? "Summary of findings" : "Update";
}

export function communicationTurn(t: Transcript): Turn {
  const recipients = emails(`${t.objective}\n${t.context}`);
  if (recipients.length === 0)
    return done("No recipient address was given, so no message was drafted or sent.");
  const drafts = t.observations.filter((o) => o.tool === "draft_message");
  if (drafts.length === 0) {
    const gist = /\b(?:that|saying)\s+(.+)$/i.exec(t.objective)?.[1];
    const findings = findingsFromContext(t.context);
    const opening = gist
      ? `${capitalize(gist)}.`
      : findings.length
        ? "Here is a summary of the findings:"
        : `${capitalize(t.objective)}.`;
    const body = ["Hello,", opening, findings.map((f) => `- ${f}`).join("\n")].filter(Boolean).join("\n\n");
    const subject = subjectFor(t.objective, findings.length > 0);
    return {
      content: "",
      calls: recipients.map((to) => ({ name: "draft_message", args: { to, subject, body } })),
    };
  }
  const sends = t.observations.filter((o) => o.tool === "send_message");
  if (sends.length === 0) {
    const ready = drafts
      .filter((d) => d.ok)
      .map((d) => d.value as { to: string; subject: string; body: string });
    if (ready.length === 0) return done(`The message could not be drafted: ${drafts[0]!.text}`);
    // Every address was written in the request itself, so the rules are sure of the recipient.
    return {
      content: "",
      calls: ready.map(({ to, subject, body }) => ({
        name: "send_message",
        args: { to, subject, body, confidence: 0.9 },
      })),
    };
  }
  return done(
    sends
      .map((s) => {
        if (s.ok) {
          const v = s.value as { to: string; subject: string; outbox_id: number };
          return `Sent "${v.subject}" to ${v.to} (outbox #${v.outbox_id}).`;
        }
        return /rejected/i.test(s.text)
          ? `The message was not sent: ${s.text.replace(/ Do not try.*$/, "")}`
          : `Sending failed: ${s.text}`;
      })
      .join(" "),
  );
}

/** The orchestrator's final answer from the task results it is given. */
export function synthesize(prompt: string): string {
  const request = /^Request: (.*)$/m.exec(prompt)?.[1] ?? "your request";
  const blocks = [
    ...prompt.matchAll(/^\[(\S+)\] \((\w+)\) .*\nstatus: ([^\n]*)\n([\s\S]*?)(?=\n\n\[|\s*$)/gm),
  ];
  const lines = blocks.map(([, id, type, status, summary]) => {
    const state = status === "done" ? "" : ` (${status})`;
    return `- [${id}] ${type}${state}: ${summary?.trim() || "no result"}`;
  });
  return `Results for: ${request}\n${lines.join("\n")}`;
}
