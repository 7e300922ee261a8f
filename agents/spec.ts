import type { KeelTool } from "../tools/contract.js";
import type { AgentType } from "./contracts.js";

/** One narrow sub-agent: what it is for, how it is told to work, and the only tools it may call. */
export interface AgentSpec {
  type: AgentType;
  /** One line the planner reads to decide what to route here. */
  description: string;
  prompt: string;
  tools: readonly KeelTool[];
}

const COMMON_RULES = `Work only on the task you are given. Use only your own tools. When a tool returns an error, fix the call or explain why the task cannot be done. When you are finished, reply with a short plain-text summary of what you found or did, naming the facts and numbers it rests on.`;

export function agentPrompt(role: string): string {
  return `${role}\n\n${COMMON_RULES}`;
}
