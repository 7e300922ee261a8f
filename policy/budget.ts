import { z } from "zod";

/** Most a whole task tree may use; checked before each model and tool call. */
export const Budgets = z
  .object({
    model_calls: z.number().int().positive().describe("Model calls across the tree"),
    tool_calls: z.number().int().positive().describe("Tool calls across the tree"),
    tokens: z.number().int().positive().describe("Input plus output tokens across the tree"),
    cost_usd: z.number().positive().describe("Priced cost in USD across the tree"),
  })
  .strict();
export type Budgets = z.infer<typeof Budgets>;

export const DEFAULT_BUDGETS: Budgets = { model_calls: 60, tool_calls: 80, tokens: 400_000, cost_usd: 2 };

/** What a tree has used so far. */
export interface Usage {
  model_calls: number;
  tool_calls: number;
  tokens: number;
  cost_usd: number;
}

export type BudgetName = keyof Budgets;

/**
 * The budget that another call of `kind` would break, if any: a call is refused when its counter is already at
 * the limit, or when tokens or cost have already reached theirs (their size is only known afterwards).
 */
export function exceededBudget(
  usage: Usage,
  budgets: Budgets,
  kind: "model" | "tool",
): BudgetName | undefined {
  if (kind === "model" && usage.model_calls >= budgets.model_calls) return "model_calls";
  if (kind === "tool" && usage.tool_calls >= budgets.tool_calls) return "tool_calls";
  if (usage.tokens >= budgets.tokens) return "tokens";
  if (usage.cost_usd >= budgets.cost_usd) return "cost_usd";
  return undefined;
}
