// The graph both servers run in bench/serve.ts: one trivial node, so the figures are the servers' own costs.
import { StateGraph, StateSchema } from "@langchain/langgraph";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";

const State = new StateSchema({
  text: z.string().describe("What to echo"),
  hold_ms: z.number().optional().describe("How long the node waits (idle streams watch a run that waits)"),
  echoed: z.string().optional().describe("The text, shouted"),
});

export const graph = new StateGraph(State)
  .addNode("shout", async (state, config) => {
    if (state.hold_ms) await sleep(state.hold_ms, undefined, { signal: config.signal });
    return { echoed: state.text.toUpperCase() };
  })
  .addEdge("__start__", "shout")
  .addEdge("shout", "__end__")
  .compile();
