import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { createTrajectoryLLMAsJudge, TRAJECTORY_ACCURACY_PROMPT } from "agentevals";
import type { EvalCase } from "./dataset.js";
import type { CaseRun } from "./evaluators.js";

/** A judge's verdict on one run; kept apart from the deterministic checks and never part of `pass`. */
export interface JudgeVerdict {
  score: boolean;
  comment: string;
}

export type Judge = (c: EvalCase, run: CaseRun) => Promise<JudgeVerdict>;

/**
 * The optional LLM-as-judge: agentevals' trajectory-accuracy rubric, asked of the configured model about the
 * request, the tool calls the run made and its answer. Only made when a real model is configured; a judge error
 * becomes a verdict that says so, not a failed eval.
 */
export function createJudge(model: BaseChatModel): Judge {
  const evaluator = createTrajectoryLLMAsJudge({ prompt: TRAJECTORY_ACCURACY_PROMPT, judge: model });
  return async (c, run) => {
    const outputs: { role: string; content: string; tool_calls?: unknown[] }[] = [
      { role: "user", content: c.request },
      ...run.calls.map((call) => ({
        role: "assistant",
        content: "",
        tool_calls: [{ function: { name: call.tool, arguments: JSON.stringify(call.args) } }],
      })),
      { role: "assistant", content: run.answer },
    ];
    try {
      const result = (await evaluator({ outputs: outputs as never })) as {
        score: boolean | number;
        comment?: string;
      };
      return { score: result.score === true || result.score === 1, comment: result.comment ?? "" };
    } catch (error) {
      return { score: false, comment: `the judge failed: ${(error as Error).message}` };
    }
  };
}
