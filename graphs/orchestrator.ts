import { buildOrchestratorGraph, markOrchestrator } from "./build-orchestrator.js";
import { defaultDeps } from "./deps.js";

/**
 * The graph `langgraph.json` serves: no checkpointer (the server brings its own), dependencies from the
 * environment. Only the served entry builds at import; Keel's own code imports the builder.
 */
export const graph = markOrchestrator(
  buildOrchestratorGraph(defaultDeps()).compile({ name: "orchestrator" }),
);
