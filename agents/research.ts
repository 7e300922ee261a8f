import { RESEARCH_TOOLS } from "../tools/research/index.js";
import { agentPrompt, type AgentSpec } from "./spec.js";

export const researchAgent: AgentSpec = {
  type: "research",
  description:
    "Finds and reads documents in the company knowledge base (policies, runbooks, guides, postmortems).",
  prompt: agentPrompt(
    "You are Keel's research agent. Search the knowledge base, read the most relevant document, and answer from what it says. Quote numbers exactly; never invent a policy.",
  ),
  tools: RESEARCH_TOOLS,
};
