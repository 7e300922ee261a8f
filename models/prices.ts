/**
 * The price table: USD per million tokens, by model name. Used for cost per call, per task and per tree, and for
 * the cost budget. The offline model costs nothing; a model missing from the table is priced at zero and
 * reported as unpriced, so a budget never silently relies on a guess.
 */
export interface Price {
  inputPerMillion: number;
  outputPerMillion: number;
}

export const PRICES: Readonly<Record<string, Price>> = {
  offline: { inputPerMillion: 0, outputPerMillion: 0 },
  "gpt-4o-mini": { inputPerMillion: 0.15, outputPerMillion: 0.6 },
  "gpt-4o": { inputPerMillion: 2.5, outputPerMillion: 10 },
  "gpt-4.1-mini": { inputPerMillion: 0.4, outputPerMillion: 1.6 },
  "gpt-4.1": { inputPerMillion: 2, outputPerMillion: 8 },
};

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
}

/** Cost of one call in USD, and whether the model had a price. */
export function priceCall(
  model: string,
  usage: TokenUsage,
  table: Readonly<Record<string, Price>> = PRICES,
): { cost_usd: number; priced: boolean } {
  const price = table[model];
  if (!price) return { cost_usd: 0, priced: false };
  return {
    cost_usd:
      (usage.input_tokens * price.inputPerMillion + usage.output_tokens * price.outputPerMillion) / 1e6,
    priced: true,
  };
}
