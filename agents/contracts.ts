import { z } from "zod";
import { FailureReason } from "../core/failures.js";

/** The four narrow sub-agents a plan may route work to. */
export const AgentType = z
  .enum(["research", "code", "data", "communication"])
  .describe("Which sub-agent handles the task");
export type AgentType = z.infer<typeof AgentType>;
export const AGENT_TYPES = AgentType.options;

export const AgentTask = z
  .object({
    task_id: z.string().min(1).max(64).describe("Identifier unique within the plan, e.g. 't1'"),
    parent_task_id: z
      .string()
      .nullable()
      .describe("The request's root task, or null when planned standalone"),
    type: AgentType,
    objective: z
      .string()
      .min(1)
      .max(2000)
      .describe("What the sub-agent must achieve, in one or two sentences"),
    context: z
      .string()
      .max(20000)
      .describe("Facts the sub-agent needs, including results of the tasks it depends on"),
    constraints: z.array(z.string()).describe("Rules the sub-agent must respect"),
    depends_on: z.array(z.string()).describe("task_ids whose results this task needs; they run first"),
    timeout_seconds: z.number().positive().max(3600).describe("Wall-clock budget for this task"),
    idempotency_key: z
      .string()
      .describe("Stable key for the task's side effects, derived from request and task id"),
  })
  .describe("One unit of work for one sub-agent");
export type AgentTask = z.infer<typeof AgentTask>;

export const AgentResultStatus = z.enum(["done", "failed", "rejected"]).describe("How the task ended");
export type AgentResultStatus = z.infer<typeof AgentResultStatus>;

export const AgentResult = z
  .object({
    task_id: z.string().describe("The AgentTask this result answers"),
    status: AgentResultStatus,
    summary: z.string().describe("What the sub-agent found or did, in plain words"),
    data: z
      .unknown()
      .optional()
      .describe("Structured output of the last successful tool call (rows, values)"),
    artifacts: z
      .array(z.string())
      .optional()
      .describe("Ids of things produced: documents read, outbox messages"),
    confidence: z
      .number()
      .min(0)
      .max(1)
      .nullable()
      .describe("The lowest confidence the model stated in the task's tool calls; null when it stated none"),
    tool_calls: z.number().int().nonnegative().describe("How many tool calls the sub-agent made"),
    tokens: z.number().int().nonnegative().describe("Model tokens used, as reported by the model"),
    cost_usd: z.number().nonnegative().describe("Model cost from the price table"),
    error: z.string().optional().describe("Why the task failed or was rejected"),
    reason: FailureReason.optional().describe("The failure's code, when the task did not finish"),
  })
  .describe("What a sub-agent hands back to the orchestrator");
export type AgentResult = z.infer<typeof AgentResult>;

/** What the planner model must produce: the fields it decides. Keel fills in the rest of each AgentTask. */
export const PlannedTask = z
  .object({
    task_id: z.string().min(1).max(64).describe("Short unique id, e.g. 't1'"),
    type: AgentType,
    objective: z.string().min(1).max(2000).describe("What the sub-agent must achieve"),
    context: z.string().max(20000).default("").describe("Facts from the request the sub-agent needs"),
    constraints: z.array(z.string()).default([]).describe("Rules the sub-agent must respect"),
    depends_on: z.array(z.string()).default([]).describe("task_ids whose results this task needs"),
    timeout_seconds: z
      .number()
      .positive()
      .max(3600)
      .optional()
      .describe("Wall-clock budget; a default applies"),
  })
  .describe("One step of the plan");
export type PlannedTask = z.infer<typeof PlannedTask>;

/** The planner model's reply: the schema handed to `withStructuredOutput`. */
export const PlanProposal = z
  .object({
    tasks: z.array(PlannedTask).min(1).describe("The tasks; depends_on must form a DAG"),
  })
  .describe("A decomposition of the request into typed tasks for the sub-agents");
export type PlanProposal = z.infer<typeof PlanProposal>;

/** A checked plan: complete AgentTasks whose depends_on form a DAG over known task ids. */
export const Plan = z
  .object({
    tasks: z.array(AgentTask).min(1).describe("The tasks, in the order the planner gave them"),
  })
  .describe("The orchestrator's decomposition of a request into typed tasks");
export type Plan = z.infer<typeof Plan>;
