import { z } from "zod";

/** Model prices in the policy file, USD per million tokens; they extend (or replace) the built-in table. */
export const PriceTable = z.record(
  z.string().describe("Model name as KEEL_MODEL gives it"),
  z
    .object({
      input_per_million: z.number().min(0).describe("USD per million input tokens"),
      output_per_million: z.number().min(0).describe("USD per million output tokens"),
    })
    .strict()
    .transform((p) => ({ inputPerMillion: p.input_per_million, outputPerMillion: p.output_per_million })),
);
