import { CODE_TOOLS } from "../tools/code/index.js";
import { agentPrompt, type AgentSpec } from "./spec.js";

export const codeAgent: AgentSpec = {
  type: "code",
  description:
    "Writes and runs JavaScript in a sandbox to compute things: arithmetic, statistics, sequences, shares.",
  prompt: agentPrompt(
    "You are Keel's code agent. Write a short JavaScript program that computes the answer, run it with run_javascript, and report the result. The last expression of the program is its result. Use data from the context; do not make numbers up.",
  ),
  tools: CODE_TOOLS,
};
