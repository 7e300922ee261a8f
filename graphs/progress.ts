import type { LangGraphRunnableConfig } from "@langchain/langgraph";
import { z } from "zod";
import { AgentResultStatus, AgentType } from "../agents/contracts.js";
import { FailureReason } from "../core/failures.js";
import { ToolCallStatus } from "../tools/contract.js";

const about = {
  task_id: z.string().describe("The AgentTask"),
  agent: AgentType,
};
const aboutCall = {
  ...about,
  tool: z.string().describe("The tool called"),
  tool_call_id: z.string().describe("The call's id"),
};

/**
 * Progress events written to LangGraph's `custom` stream, so that `keel run`, Studio and any SDK client see the
 * same account of what happens as it happens. Parsed when read back: a chunk that is not one is ignored.
 */
export const ProgressEvent = z
  .discriminatedUnion("type", [
    z.object({
      type: z.literal("plan"),
      tasks: z
        .array(
          z.object({
            task_id: z.string().describe("The AgentTask's id in the plan"),
            type: AgentType,
            objective: z.string().describe("What the task is for"),
            depends_on: z.array(z.string()).describe("Tasks that must finish first"),
          }),
        )
        .describe("The checked plan"),
    }),
    z.object({
      type: z.literal("wave"),
      wave: z.number().int().describe("1 for the first set of tasks dispatched together"),
      task_ids: z.array(z.string()).describe("The tasks of this wave"),
    }),
    z.object({
      type: z.literal("agent_start"),
      ...about,
      objective: z.string().describe("What the task is for"),
    }),
    z.object({
      type: z.literal("agent_done"),
      ...about,
      status: AgentResultStatus,
      summary: z.string().describe("What the agent found or did, or why it failed"),
      reason: FailureReason.optional().describe("Why it failed, when it did"),
    }),
    z.object({
      type: z.literal("tool_call"),
      ...aboutCall,
      args: z.unknown().describe("The arguments as the agent gave them"),
    }),
    z.object({
      type: z.literal("tool_result"),
      ...aboutCall,
      status: ToolCallStatus,
      detail: z.string().describe("The start of what the tool returned, or why it did not run"),
    }),
    z.object({
      type: z.literal("approval_requested"),
      ...about,
      tools: z.array(z.string()).describe("The held tools, in the order proposed"),
    }),
    z.object({ type: z.literal("answer"), text: z.string().describe("The final answer") }),
  ])
  .describe("One step of a run, as Keel reports it");
export type ProgressEvent = z.infer<typeof ProgressEvent>;

export function emit(config: LangGraphRunnableConfig | undefined, event: ProgressEvent): void {
  config?.writer?.({ keel: event });
}

/** Picks Keel progress events out of a `custom` stream chunk; anything else (or a malformed one) is undefined. */
export function asProgressEvent(chunk: unknown): ProgressEvent | undefined {
  if (!chunk || typeof chunk !== "object" || !("keel" in chunk)) return undefined;
  const parsed = ProgressEvent.safeParse(chunk.keel);
  return parsed.success ? parsed.data : undefined;
}
