import { HumanMessage } from "@langchain/core/messages";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.js";
import { DependencyError } from "../../core/errors.js";
import { callModel } from "../../graphs/model-call.js";
import type { GraphDeps } from "../../graphs/deps.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { Dependencies } from "../../policy/resilience.js";

const config = loadConfig({});
const deps = (modelTimeoutMs: number): GraphDeps => ({
  model: () => {
    throw new Error("not used");
  },
  db: () => Promise.reject(new Error("no database in this test")),
  limits: { ...config.limits, modelTimeoutMs },
  policy: DEFAULT_POLICY,
  dependencies: new Dependencies({ retries: 1, baseMs: 1, breakerThreshold: 10 }),
  price: () => 0,
  modelInfo: { provider: "test", name: "deaf-model" },
});

describe("callModel", () => {
  it("bounds a model that never answers and ignores the abort signal: each try times out, then it gives up", async () => {
    let tries = 0;
    const call = callModel(deps(50), {}, { agent: "planner", messages: [new HumanMessage("hi")] }, () => {
      tries++;
      return new Promise<never>(() => undefined);
    });
    await expect(call).rejects.toThrow(DependencyError);
    await expect(call).rejects.toThrow(/did not answer within 50 ms/);
    expect(tries).toBe(2);
  });

  it("leaves a call that answers in time alone", async () => {
    const { value } = await callModel(deps(1000), {}, { agent: "planner", messages: [] }, () =>
      Promise.resolve("fine"),
    );
    expect(value).toBe("fine");
  });
});
