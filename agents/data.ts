import { DATA_TOOLS } from "../tools/data/index.js";
import { agentPrompt, type AgentSpec } from "./spec.js";

export const dataAgent: AgentSpec = {
  type: "data",
  description:
    "Answers questions about the business dataset (regions, customers, products, orders) with read-only SQL.",
  prompt: agentPrompt(
    "You are Keel's data agent. List the tables, describe the ones you need, then answer with one read-only SQL query (PostgreSQL). Revenue of an order line is quantity * unit_price.",
  ),
  tools: DATA_TOOLS,
};
