import { communicationAgent } from "../agents/communication.js";
import { defaultDeps } from "./deps.js";
import { buildSubagentGraph } from "./subagent.js";

/** The communication sub-agent on its own, as `langgraph.json` serves it (the server brings its own checkpointer). */
export const graph = buildSubagentGraph(communicationAgent, defaultDeps()).compile({ name: "communication" });
