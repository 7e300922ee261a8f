import { AGENTS } from "../agents/index.js";
import { AGENT_TYPES } from "../agents/contracts.js";
import type { ModelRole } from "./deps.js";

const PLANNER_PROMPT = `You are Keel's planner. Split the request into the smallest set of tasks for these sub-agents:
${AGENT_TYPES.map((t) => `- ${t}: ${AGENTS[t].description}`).join("\n")}
Give each task a short id (t1, t2, …), one agent type, a precise objective, the context it needs from the request, and depends_on listing the tasks whose results it needs. Tasks without dependencies run in parallel. A message that reports findings depends on the tasks that produce them. Use as few tasks as the request needs.`;

const SYNTHESIZER_PROMPT = `You are Keel's orchestrator. Write the final answer to the request from the task results. Say what each task found or did, citing its task id in brackets like [t1]. Say plainly when a task failed or was rejected. Do not add facts that are not in the results.`;

/** Every model role, in the order releases list their prompts. */
export const MODEL_ROLES: readonly ModelRole[] = ["planner", "synthesizer", ...AGENT_TYPES];

/** The system prompt of each role as this version of Keel ships it; a release may replace any of them. */
export const DEFAULT_PROMPTS: Readonly<Record<ModelRole, string>> = {
  planner: PLANNER_PROMPT,
  synthesizer: SYNTHESIZER_PROMPT,
  ...(Object.fromEntries(AGENT_TYPES.map((t) => [t, AGENTS[t].prompt])) as Record<
    (typeof AGENT_TYPES)[number],
    string
  >),
};

/** The system prompt a role runs with: the release's, else the built-in one. */
export const promptFor = (prompts: Partial<Record<ModelRole, string>> | undefined, role: ModelRole): string =>
  prompts?.[role] ?? DEFAULT_PROMPTS[role];
