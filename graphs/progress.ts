import type { LangGraphRunnableConfig } from "@langchain/langgraph";

/**
 * Progress events written to LangGraph's `custom` stream, so that `keel run`, Studio and any SDK client see the
 * same account of what happens as it happens.
 */
export type ProgressEvent =
  | { type: "plan"; tasks: { task_id: string; type: string; objective: string; depends_on: string[] }[] }
  | { type: "wave"; wave: number; task_ids: string[] }
  | { type: "agent_start"; task_id: string; agent: string; objective: string }
  | { type: "agent_done"; task_id: string; agent: string; status: string; summary: string }
  | { type: "tool_call"; task_id: string; agent: string; tool: string; tool_call_id: string; args: unknown }
  | {
      type: "tool_result";
      task_id: string;
      agent: string;
      tool: string;
      tool_call_id: string;
      status: string;
      detail: string;
    }
  | { type: "approval_requested"; task_id: string; agent: string; tools: string[] }
  | { type: "answer"; text: string };

export function emit(config: LangGraphRunnableConfig | undefined, event: ProgressEvent): void {
  config?.writer?.({ keel: event });
}

/** Picks Keel progress events out of a `custom` stream chunk. */
export function asProgressEvent(chunk: unknown): ProgressEvent | undefined {
  if (chunk && typeof chunk === "object" && "keel" in chunk) return (chunk as { keel: ProgressEvent }).keel;
  return undefined;
}
