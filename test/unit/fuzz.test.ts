import type { Command } from "commander";
import fc from "fast-check";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { POLICY_CATALOG, TOOLS } from "../../agents/index.js";
import { buildProgram } from "../../cli/program.js";
import { isKeelError } from "../../core/errors.js";
import { checkEditedArgs, decideEdit, type PendingAction } from "../../graphs/approval.js";
import { DEFAULT_POLICY, parsePolicy } from "../../policy/file.js";
import { guardRequest } from "../../policy/guard.js";
import { Decision } from "../../policy/risk.js";
import { parseBatch } from "../../runtime/batch.js";
import { validateArgs } from "../../tools/contract.js";

/**
 * Fuzzing of every input surface (fast-check, 1,000 cases each): whatever arrives, the answer is a result or a
 * named error (a KeelError, or commander's own for the command line), never a crash. A failure prints the
 * shrunk counterexample and the seed to replay it.
 */
const RUNS = { numRuns: 1000 };

/** The error is one Keel (or the CLI parser) names; anything else is a crash. */
function named(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return isKeelError(error) || (typeof code === "string" && code.startsWith("commander."));
}

class ParsedOk extends Error {}

/** The command line with output silenced, stopped after parsing (before any command runs). */
function quietProgram(): Command {
  const program = buildProgram("0.0.0");
  const silence = (c: Command) => {
    c.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    c.commands.forEach(silence);
  };
  silence(program);
  program.hook("preAction", () => {
    throw new ParsedOk();
  });
  return program;
}

const COMMANDS = quietProgram().commands.map((c) => c.name());
const OPTIONS = [
  ...new Set(quietProgram().commands.flatMap((c) => c.options.flatMap((o) => [o.long, o.short]))),
].filter((o): o is string => Boolean(o));
const word = fc.oneof(
  fc.constantFrom(...COMMANDS),
  fc.constantFrom(...OPTIONS),
  fc.constantFrom("--help", "-V", "--", "-", "0", "-1", "1e9", "NaN", "{", '{"to": 1}', "pending", "7d"),
  fc.string({ maxLength: 12 }),
  fc.integer().map(String),
);

describe("fuzzing the input surfaces", () => {
  it("command-line arguments: parsed, or refused by name", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(word, { maxLength: 7 }), async (argv) => {
        try {
          await quietProgram().parseAsync(argv, { from: "user" });
        } catch (error) {
          if (error instanceof ParsedOk) return;
          expect(named(error), `${String(error)} for ${JSON.stringify(argv)}`).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it("batch lines: every non-empty line is a request or a named line error", () => {
    const line = fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .record({ request: fc.string(), id: fc.option(fc.string()), workflow: fc.option(fc.string()) })
        .map((x) => JSON.stringify(x)),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), (lines) => {
        const text = lines.join("\n");
        const { lines: ok, errors } = parseBatch(text);
        const nonEmpty = text.split(/\r?\n/).filter((l) => l.trim() !== "").length;
        expect(ok.length + errors.length).toBe(nonEmpty);
        for (const e of errors) expect(e.reason).toBe("invalid_request");
      }),
      RUNS,
    );
  });

  it("the policy file: loaded, or refused with a named error", () => {
    const key = fc.constantFrom(
      "version",
      "scope",
      "budgets",
      "risk",
      "tiers",
      "tools",
      "rules",
      "send_message",
      "tool",
      "arg",
      "matches",
      "decision",
      "slo",
      "prices",
      "retention",
      "model_calls",
    );
    const value = fc.letrec<{ v: unknown }>((tie) => ({
      v: fc.oneof(
        { depthSize: "small" },
        fc.string({ maxLength: 8 }),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.constantFrom("sync_approval", "high", "(", "^a$"),
        fc.array(tie("v"), { maxLength: 3 }),
        fc.dictionary(key, tie("v"), { maxKeys: 3 }),
      ),
    })).v;
    const text = fc.oneof(
      value.map((v) => stringify(v)),
      fc.string(),
      fc.constantFrom("a: [", "rules:\n  - {", "\t:", "version: 2", "risk:\n  tools:\n    send_mesage: {}"),
    );
    fc.assert(
      fc.property(text, (yaml) => {
        try {
          parsePolicy(yaml, "fuzz.yaml", POLICY_CATALOG);
        } catch (error) {
          expect(named(error), `${String(error)} for ${JSON.stringify(yaml)}`).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it("approval edits: checked and decided again, or refused by name", () => {
    const action: PendingAction = {
      tool_call_id: "c1",
      tool: "send_message",
      args: { to: "ops@harbor.example", subject: "Drill", body: "Friday" },
      risk: "high",
    };
    const edit = fc.dictionary(
      fc.oneof(fc.constantFrom("to", "subject", "body", "subjct", "confidence", "__proto__"), fc.string()),
      fc.anything(),
      { maxKeys: 4 },
    );
    fc.assert(
      fc.property(edit, (e) => {
        try {
          checkEditedArgs([action], e);
        } catch (error) {
          expect(named(error), String(error)).toBe(true);
          return;
        }
        expect(Decision.options).toContain(decideEdit(action, "communication", e, DEFAULT_POLICY).decision);
      }),
      RUNS,
    );
  });

  it("tool arguments: valid or invalid with a reason, for every tool", () => {
    const tools = [...TOOLS.values()];
    fc.assert(
      fc.property(fc.constantFrom(...tools), fc.anything(), (tool, args) => {
        const checked = validateArgs(tool, args);
        if (!checked.ok) expect(checked.error).toMatch(/\S/);
      }),
      RUNS,
    );
  });

  it("request text: accepted, or blocked and refused by name", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.anything()), (request) => {
        try {
          guardRequest(request, { maxChars: 4000, scope: DEFAULT_POLICY.scope });
        } catch (error) {
          expect(named(error), `${String(error)} for ${JSON.stringify(request)}`).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
