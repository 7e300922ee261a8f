import { researchAgent } from "../agents/research.js";
import { defaultDeps } from "./deps.js";
import { buildSubagentGraph } from "./subagent.js";

/** The research sub-agent on its own, as `langgraph.json` serves it (the server brings its own checkpointer). */
export const graph = buildSubagentGraph(researchAgent, defaultDeps()).compile({ name: "research" });
