import { codeAgent } from "./code.js";
import { communicationAgent } from "./communication.js";
import { AGENT_TYPES, type AgentType } from "./contracts.js";
import { dataAgent } from "./data.js";
import { researchAgent } from "./research.js";
import type { AgentSpec } from "./spec.js";
import { toolRegistry } from "../tools/contract.js";

export * from "./contracts.js";
export type { AgentSpec } from "./spec.js";

/** Every sub-agent, by type. */
export const AGENTS: Readonly<Record<AgentType, AgentSpec>> = {
  research: researchAgent,
  code: codeAgent,
  data: dataAgent,
  communication: communicationAgent,
};

/**
 * Every tool of every agent, by name. Built when the module loads: two different tools with one name are a
 * wiring error found at start-up, not at a call.
 */
export const TOOLS = toolRegistry(Object.values(AGENTS).flatMap((agent) => agent.tools));

/** What a policy file may name (tools, their arguments and agents), for `loadPolicy` to check rules against. */
export const POLICY_CATALOG = {
  tools: new Map(
    [...TOOLS.values()].map((tool) => [
      tool.name,
      {
        args: Object.keys((tool.definition.function.parameters as { properties?: object }).properties ?? {}),
        agents: [...tool.agents],
      },
    ]),
  ),
  agents: [...AGENT_TYPES],
};
