import type { AgentType, PlanProposal, PlannedTask } from "../../agents/contracts.js";
import { capitalize, emails, words } from "./text.js";

/**
 * The offline planner: splits a request into clauses at action verbs, gives each clause an agent type from the
 * words it uses (intents and the dataset's vocabulary), and wires dependencies the way a person would read them:
 * computations need the data before them, messages need every finding before them.
 */

const ACTION =
  "find|look|search|check|compute|calculate|work out|email|e-mail|mail|send|notify|tell|inform|remind|ping|summari[sz]e|count|list|show|get|draft|write|run|explain|what|which|how|is|are|give|report|let|share|pull|figure";
const SPLIT = new RegExp(
  `(?:[;?!]|\\.(?=\\s))\\s*|,\\s*(?:and\\s+|then\\s+|and then\\s+)?(?=(?:${ACTION})\\b)|\\s+(?:and then|and|then)\\s+(?=(?:${ACTION})\\b)`,
  "i",
);

const COMMUNICATION =
  /\b(e-?mail|mail|send|notify|message|tell|inform|remind|ping|announce|draft|write to|let .+ know)\b/i;
const EXPLICIT_CODE =
  /\b(compute|calculate|calculation|work out|javascript|script|program|simulate|fibonacci|primes?|factorial|square root|standard deviation|arithmetic)\b|\d\s*[-+*/^]\s*\d/i;
const STATISTIC = /\b(share|percentage|percent|proportion|growth|average|mean|median|ratio|change)\b/i;
const DATASET =
  /\b(revenue|sales|orders?|customers?|clients?|products?|regions?|categor(?:y|ies)|units|segments?|dataset|database|tables?|sql|spend|spent|buyers?|sold|monthly)\b/i;
const DATA_QUESTION = /\b(how many|top \d+|which \w+ (?:had|has|have|generated|bought|sold|placed)|count)\b/i;
const RESEARCH =
  /\b(polic(?:y|ies)|runbook|handbook|guide|guidelines?|procedures?|process|rules?|documentation|docs?|knowledge base|postmortem|incidents?|on-?call|retention|shipping|expenses?|passwords?|onboarding|rate limits?|escalat\w*|pricing|discounts?|remote|vendors?|releases?|say|says)\b/i;
const REFERS_BACK =
  /\b(each|their|those|these|them|it|the results?|the findings|that data|the totals?|the figures)\b/i;

function score(re: RegExp, text: string): number {
  return (text.match(new RegExp(re.source, "gi")) ?? []).length;
}

export function classifyClause(raw: string, hasEarlierData: boolean): AgentType | undefined {
  // "tell me", "let us know" ask Keel itself for an answer; they are not messages to someone else.
  const clause = raw.replace(/\b(tell|show|give|send|let)\s+(me|us)\b/gi, "");
  if (emails(clause).length > 0 || COMMUNICATION.test(clause.trim().split(/\s+/).slice(0, 3).join(" ")))
    return "communication";
  if (EXPLICIT_CODE.test(clause)) return "code";
  const research = score(RESEARCH, clause) * 2;
  const data = score(DATASET, clause) * 2 + (DATA_QUESTION.test(clause) ? 1 : 0);
  if (STATISTIC.test(clause) && data === 0 && (hasEarlierData || REFERS_BACK.test(clause))) return "code";
  if (data > research) return "data";
  if (research > 0) return "research";
  if (COMMUNICATION.test(clause)) return "communication";
  if (STATISTIC.test(clause) && hasEarlierData) return "code";
  return undefined;
}

export function splitClauses(request: string): string[] {
  return request
    .split(SPLIT)
    .map((c) =>
      c
        ?.trim()
        .replace(/^(and|then|also)\s+/i, "")
        .replace(/[.,;]+$/, ""),
    )
    .filter((c): c is string => Boolean(c && words(c).length > 0));
}

/** The request as a plan proposal (the same shape a real model returns through `submit_plan`). */
export function planRequest(request: string): PlanProposal {
  const tasks: PlannedTask[] = [];
  const add = (type: AgentType, objective: string, depends_on: string[], context = "") => {
    const task_id = `t${tasks.length + 1}`;
    tasks.push({ task_id, type, objective: capitalize(objective), context, constraints: [], depends_on });
    return task_id;
  };
  const ofType = (...types: AgentType[]) => tasks.filter((t) => types.includes(t.type)).map((t) => t.task_id);

  for (const clause of splitClauses(request)) {
    const type = classifyClause(clause, ofType("data").length > 0);
    if (!type) {
      // A clause with no intent of its own qualifies the one before it ("…, in 2025").
      const previous = tasks.at(-1);
      if (previous) previous.objective = `${previous.objective}, ${clause}`;
      continue;
    }
    if (type === "code") {
      add("code", clause, REFERS_BACK.test(clause) || STATISTIC.test(clause) ? ofType("data") : []);
    } else if (type === "communication") {
      const recipients = emails(clause);
      // "Email ops@x the revenue by region": the message's content is a task of its own.
      const about = clause.replace(/\S+@\S+/g, "").replace(COMMUNICATION, "");
      const isGist = /^\s*(that|saying|:)/i.test(about) || about.includes(":");
      const embedded = isGist
        ? undefined
        : score(DATASET, about) > 0
          ? "data"
          : score(RESEARCH, about) > 0
            ? "research"
            : undefined;
      const before =
        embedded && ofType("research", "data", "code").length === 0 ? [add(embedded, about.trim(), [])] : [];
      add(
        "communication",
        clause,
        [...ofType("research", "data", "code"), ...before].filter((v, i, a) => a.indexOf(v) === i),
        recipients.length ? `Recipients: ${recipients.join(", ")}` : "",
      );
    } else {
      add(type, clause, []);
    }
  }
  if (tasks.length === 0) add("research", request.trim(), []);
  return { tasks };
}
