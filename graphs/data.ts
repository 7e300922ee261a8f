import { dataAgent } from "../agents/data.js";
import { defaultDeps } from "./deps.js";
import { buildSubagentGraph } from "./subagent.js";

/** The data sub-agent on its own, as `langgraph.json` serves it (the server brings its own checkpointer). */
export const graph = buildSubagentGraph(dataAgent, defaultDeps()).compile({ name: "data" });
