import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "../..");
const config = JSON.parse(fs.readFileSync(path.join(root, "langgraph.json"), "utf8")) as {
  graphs: Record<string, string>;
};

describe("langgraph.json", () => {
  it("serves the orchestrator and every sub-agent", () => {
    expect(Object.keys(config.graphs).sort()).toEqual([
      "code",
      "communication",
      "data",
      "orchestrator",
      "research",
    ]);
  });

  it.each(Object.entries(config.graphs))(
    "%s points at a file that exports a compiled graph without a checkpointer",
    async (_id, target) => {
      const [file, exportName] = target.split(":");
      const absolute = path.resolve(root, file!);
      expect(fs.existsSync(absolute), `${file} does not exist`).toBe(true);
      const module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
      const graph = module[exportName!] as
        { invoke?: unknown; getGraph?: unknown; checkpointer?: unknown } | undefined;
      expect(graph, `${file} has no export "${exportName}"`).toBeDefined();
      expect(typeof graph!.invoke).toBe("function");
      expect(typeof graph!.getGraph).toBe("function");
      expect(graph!.checkpointer).toBeUndefined();
    },
  );

  it("shows the sub-agents as subgraphs of the orchestrator", async () => {
    const { graph } = await import("../../graphs/orchestrator.js");
    const names = [];
    for await (const [name] of graph.getSubgraphsAsync()) names.push(name);
    expect(names.sort()).toEqual(["code", "communication", "data", "research"]);
  });
});
