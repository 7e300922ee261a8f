import { codeAgent } from "../agents/code.js";
import { defaultDeps } from "./deps.js";
import { buildSubagentGraph } from "./subagent.js";

/** The code sub-agent on its own, as `langgraph.json` serves it (the server brings its own checkpointer). */
export const graph = buildSubagentGraph(codeAgent, defaultDeps()).compile({ name: "code" });
