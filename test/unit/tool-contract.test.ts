import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkToolWiring, defineTool, executeTool } from "../../tools/contract.js";
import type { ToolContext } from "../../tools/context.js";

const noDb = () => Promise.reject(new Error("no database in this test"));
const ctx = (signal = new AbortController().signal): ToolContext => ({
  db: noDb,
  signal,
  threadId: "thread",
  toolCallId: "t1/call",
  agent: "code",
  limits: { sqlRowLimit: 5, sqlTimeoutMs: 100, sandboxTimeoutMs: 100, sandboxMemoryBytes: 1 << 24 },
});

const add = defineTool({
  name: "add",
  description: "Add two numbers",
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.object({ sum: z.number() }),
  risk: "low",
  agents: ["code"],
  timeoutMs: 1_000,
  run: ({ a, b }) => Promise.resolve({ sum: a + b }),
});

describe("defineTool and executeTool", () => {
  it("offers the model a JSON schema of the input", () => {
    expect(add.definition.function.parameters).toMatchObject({
      type: "object",
      properties: { a: { type: "number" }, b: { type: "number" } },
    });
    expect(add.needsApproval).toBe(false);
  });

  it("runs a valid call", async () => {
    expect(await executeTool(add, { a: 2, b: 3 }, ctx())).toEqual({
      status: "ok",
      output: { sum: 5 },
      content: '{"sum":5}',
    });
  });

  it("returns invalid arguments to the agent as a validation error, without running", async () => {
    const outcome = await executeTool(add, { a: "two" }, ctx());
    expect(outcome.status).toBe("invalid_arguments");
    expect(outcome.content).toMatch(/Invalid arguments for add: a: .*; b: /);
  });

  it("fails closed when the output breaks the contract", async () => {
    const broken = defineTool({
      ...add,
      name: "broken",
      run: () => Promise.resolve({ sum: "NaN" } as never),
    });
    const outcome = await executeTool(broken, { a: 1, b: 1 }, ctx());
    expect(outcome).toMatchObject({ status: "error", error: expect.stringMatching(/breaks its contract/) });
  });

  it("times out a slow tool and says so", async () => {
    const slow = defineTool({
      ...add,
      name: "slow",
      timeoutMs: 50,
      run: (_args, c) =>
        new Promise((_, reject) => c.signal.addEventListener("abort", () => reject(new Error("aborted")))),
    });
    const outcome = await executeTool(slow, { a: 1, b: 1 }, ctx());
    expect(outcome).toMatchObject({ status: "error", error: "slow timed out after 50 ms." });
  });

  it("throws at build time for a duplicate tool or one offered to the wrong agent", () => {
    expect(() => checkToolWiring("code", [add, add])).toThrow(/two tools named "add"/);
    expect(() => checkToolWiring("research", [add])).toThrow(/may not be offered to agent "research"/);
    expect(() => defineTool({ ...add, name: "Bad Name" })).toThrow(/snake_case/);
  });
});
