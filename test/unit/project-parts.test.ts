import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../core/errors.js";
import { GraphRegistry } from "../../runtime/registry.js";
import { loadHttpApp, UiBundles } from "../../server/project.js";

// The parts of a langgraph.json beside its graphs (`ui`, `ui_config`, `http`): bad ones are refused with what to
// give, before the server starts.
const ECHO = path.resolve(import.meta.dirname, "../fixtures/user-graph/echo.ts");

function project(parts: object, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-project-"));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const file = path.join(dir, "langgraph.json");
  fs.writeFileSync(file, JSON.stringify({ graphs: { echo: `${ECHO}:graph` }, ...parts }));
  return file;
}

describe("a project's ui and http settings", () => {
  it.each([
    ["ui that is not a map of files", { ui: ["./ui.tsx"] }, /"ui" is \["\.\/ui\.tsx"\]; give \{"agent": /],
    ["a ui file that is not a path", { ui: { a: 3 } }, /"ui" is \{"a":3\}; give/],
    [
      "ui_config.shared that is not a list",
      { ui_config: { shared: "react" } },
      /ui_config\.shared.*list of package/,
    ],
    [
      "http.app that is not a file:export",
      { http: { app: 42 } },
      /"http\.app" is 42; give ".*" of a Hono app/,
    ],
  ])("refuses %s", (_what, parts, message) => {
    expect(() => GraphRegistry.open(project(parts))).toThrow(message);
    expect(() => GraphRegistry.open(project(parts))).toThrow(InputError);
  });

  it("names the http settings it does not apply", () => {
    const graphs = GraphRegistry.open(
      project({ http: { app: "./app.ts:app", cors: {}, disable_runs: true } }),
    );
    expect(graphs.project.httpUnapplied).toEqual(["cors", "disable_runs"]);
  });

  it("refuses an http.app that is not a Hono app, or names no export of its file", async () => {
    await expect(
      loadHttpApp(GraphRegistry.open(project({ http: { app: `${ECHO}:graph` } }))),
    ).rejects.toThrow(/echo\.ts:graph \(http\.app of .*\) is not a Hono app: export `new Hono\(\)`/);
    await expect(loadHttpApp(GraphRegistry.open(project({ http: { app: `${ECHO}:app` } })))).rejects.toThrow(
      /names no export "app"; export it, or fix the name/,
    );
    expect(await loadHttpApp(GraphRegistry.open(project({})))).toBeUndefined();
  });

  it("answers a UI whose components do not build with what failed, and an unknown agent as not found", async () => {
    const file = project({ ui: { broken: "./ui.js" } }, { "ui.js": "export default {{{ nope" });
    const bundles = new UiBundles(GraphRegistry.open(file));
    await expect(bundles.files("broken")).rejects.toThrow(
      /The generative UI of .* could not be built: .*Fix the/,
    );
    await expect(bundles.files("other")).rejects.toThrow(/There is no UI for "other"; .* has UI for broken/);
  });
});
