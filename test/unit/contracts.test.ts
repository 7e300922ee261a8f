import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AgentResult, AgentTask, Plan, PlanProposal } from "../../agents/contracts.js";

function undescribed(schema: z.ZodType, path = "root"): string[] {
  const found: string[] = [];
  const inner =
    schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodNullable
      ? (schema.def as unknown as { innerType: z.ZodType }).innerType
      : schema;
  if (inner instanceof z.ZodObject) {
    for (const [key, field] of Object.entries(inner.shape)) {
      if (!field.description) found.push(`${path}.${key}`);
      found.push(...undescribed(field, `${path}.${key}`));
    }
  } else if (inner instanceof z.ZodArray) {
    found.push(...undescribed(inner.element as z.ZodType, `${path}[]`));
  }
  return found;
}

describe("contracts", () => {
  it.each([
    ["AgentTask", AgentTask],
    ["AgentResult", AgentResult],
    ["PlanProposal", PlanProposal],
    ["Plan", Plan],
  ])("%s describes every field", (_name, schema) => {
    expect(undescribed(schema)).toEqual([]);
  });

  it("AgentTask refuses an unknown agent type and accepts a complete task", () => {
    const task = {
      task_id: "t1",
      parent_task_id: null,
      type: "research",
      objective: "Find the refund policy",
      context: "",
      constraints: [],
      depends_on: [],
      timeout_seconds: 60,
      idempotency_key: "k:t1",
    };
    expect(AgentTask.parse(task)).toEqual(task);
    expect(AgentTask.safeParse({ ...task, type: "finance" }).success).toBe(false);
  });

  it("AgentResult bounds confidence to 0..1", () => {
    const result = {
      task_id: "t1",
      status: "done",
      summary: "ok",
      confidence: 1.5,
      tool_calls: 0,
      tokens: 0,
      cost_usd: 0,
    };
    expect(AgentResult.safeParse(result).success).toBe(false);
    expect(AgentResult.safeParse({ ...result, confidence: 0.5 }).success).toBe(true);
  });
});
