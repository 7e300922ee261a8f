import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { POLICY_CATALOG } from "../../agents/index.js";
import { loadConfig } from "../../core/config.js";
import { InputError } from "../../core/errors.js";
import { DEFAULT_PROMPTS } from "../../graphs/prompts.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { digestOf, ReleaseSpec, specFromConfig, specFromFile } from "../../runtime/releases/spec.js";

const config = loadConfig({ KEEL_DATA_DIR: os.tmpdir() });

/** Writes files into a fresh folder and reads `release.yaml` from it as a release file. */
function fromFiles(files: Record<string, string>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-release-"));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return specFromFile(path.join(dir, "release.yaml"), config, DEFAULT_POLICY, POLICY_CATALOG);
}

describe("a release file", () => {
  it("fills what it leaves out from the current configuration, and reads its policy file beside it", () => {
    const { spec, description } = fromFiles({
      "release.yaml": [
        "description: strict messages",
        "prompts: { planner: Plan briefly. }",
        "policy_file: strict.policy.yaml",
        "limits: { maxAgentSteps: 4 }",
        "model: { temperature: 0.5 }",
      ].join("\n"),
      "strict.policy.yaml": "tools:\n  send_message:\n    decision: sync_approval\n",
    });
    expect(description).toBe("strict messages");
    expect(spec.prompts.planner).toBe("Plan briefly.");
    expect(spec.prompts.research).toBe(DEFAULT_PROMPTS.research);
    expect(spec.policy.tools.send_message).toEqual({ decision: "sync_approval" });
    expect(spec.limits).toEqual({ ...config.limits, maxAgentSteps: 4 });
    expect(spec.model).toEqual({ name: "offline", max_tokens: config.model.maxTokens, temperature: 0.5 });
  });

  it.each([
    ["that cannot be read", {}, /Cannot read the release file .*release\.yaml \(ENOENT\)/],
    ["that is not YAML", { "release.yaml": "model: [unclosed" }, /is not valid YAML/],
    [
      "with a field it does not know",
      { "release.yaml": "colour: red" },
      /not a valid release file: .*colour/,
    ],
    [
      "with both policy and policy_file",
      { "release.yaml": "policy: {}\npolicy_file: p.yaml" },
      /give policy or policy_file, not both/,
    ],
    [
      "whose policy_file is missing",
      { "release.yaml": "policy_file: gone.yaml" },
      /policy_file gone\.yaml cannot be read/,
    ],
    [
      "whose policy names a tool that does not exist",
      { "release.yaml": "policy:\n  tools:\n    send_mesage: { decision: autonomous }" },
      /names the tool "send_mesage".*did you mean "send_message"/,
    ],
    [
      "with a temperature out of range",
      { "release.yaml": "model: { temperature: 5 }" },
      /model\.temperature/,
    ],
    ["with a limit of zero", { "release.yaml": "limits: { maxAgentSteps: 0 }" }, /limits\.maxAgentSteps/],
    ["with another graph", { "release.yaml": "graph: mine" }, /graph/],
  ])("is refused when it is a file %s", (_what, files, message) => {
    expect(() => fromFiles(files)).toThrow(message);
    expect(() => fromFiles(files)).toThrow(InputError);
  });
});

describe("a release's digest", () => {
  it("is the same for the same bundle, whatever the key order or a trip through JSON", () => {
    const spec = specFromConfig(config, DEFAULT_POLICY);
    const reordered = Object.fromEntries(Object.entries(spec).reverse()) as ReleaseSpec;
    expect(digestOf(reordered)).toBe(digestOf(spec));
    expect(digestOf(ReleaseSpec.parse(JSON.parse(JSON.stringify(spec))))).toBe(digestOf(spec));
    expect(digestOf({ ...spec, limits: { ...spec.limits, maxAgentSteps: 1 } })).not.toBe(digestOf(spec));
  });
});

describe("keel.release.example.yaml", () => {
  it("is a valid release file that holds every message for a second person", () => {
    const file = path.resolve(import.meta.dirname, "../../keel.release.example.yaml");
    const { spec, description } = specFromFile(file, config, DEFAULT_POLICY, POLICY_CATALOG);
    expect(description).toMatch(/second person/);
    expect(spec.policy.tools.send_message).toEqual({ decision: "sync_approval" });
    expect(spec.limits.maxAgentSteps).toBe(6);
  });
});
