import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { alignLangSmithSwitch } from "../../core/config.js";
import { DependencyError, InputError } from "../../core/errors.js";
import { createLogger } from "../../observability/log.js";
import { contextFromTraceparent, currentTraceparent, errorClass } from "../../observability/spans.js";
import { parsePolicy } from "../../policy/file.js";
import { targetsFor } from "../../policy/slo-targets.js";
import { priceCall, PRICES } from "../../models/prices.js";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

describe("structured log", () => {
  it("writes JSON lines with the fields given, PII redacted in message and fields, secrets removed by key", () => {
    const { lines, stream } = capture();
    const log = createLogger({ logLevel: "info" }, { destination: stream });
    log.info(
      { task_id: "t-1", to: "jane.roe@example.com", apiKey: "sk-live-123", nested: { password: "hunter2" } },
      "sent to jane.roe@example.com, card 4111 1111 1111 1111",
    );
    log.debug("below the level");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ task_id: "t-1", level: 30, name: "keel" });
    expect(line.msg).toBe("sent to [email], card [card]");
    expect(line.to).toBe("[email]");
    expect(line.apiKey).toBe("[secret]");
    expect(line.nested).toEqual({ password: "[secret]" });
    expect(lines[0]).not.toMatch(/jane\.roe|4111|sk-live|hunter2/);
  });
});

describe("trace context", () => {
  it("round-trips a stored traceparent, and has none when nothing is traced", () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    expect(currentTraceparent(contextFromTraceparent(traceparent))).toBe(traceparent);
    expect(currentTraceparent(contextFromTraceparent(null))).toBeUndefined();
    expect(currentTraceparent(contextFromTraceparent("garbage"))).toBeUndefined();
  });

  it("names error classes by Keel's code, else the error's name", () => {
    expect(errorClass(new DependencyError("model endpoint", 3, "gave up"))).toBe("dependency_failed");
    expect(errorClass(new InputError("bad", "invalid_argument"))).toBe("invalid_argument");
    expect(errorClass(new TypeError("x"))).toBe("TypeError");
    expect(errorClass(new Error("x"))).toBe("error");
    expect(errorClass("a string")).toBe("error");
  });
});

describe("LangSmith switch", () => {
  it("turns LangChain's own switches off when Keel keeps LangSmith off, and leaves them when on", () => {
    const env: Record<string, string | undefined> = {
      LANGSMITH_TRACING: "true",
      LANGCHAIN_TRACING_V2: "true",
    };
    alignLangSmithSwitch(true, env);
    expect(env.LANGSMITH_TRACING).toBe("true");
    alignLangSmithSwitch(false, env);
    expect(env).toEqual({ LANGSMITH_TRACING: "false", LANGCHAIN_TRACING_V2: "false" });
  });
});

describe("policy file: SLO targets and prices", () => {
  it("merges workflow targets over the file's, over the defaults", () => {
    const policy = parsePolicy(
      "slo:\n  targets: { task_success_rate: 0.9 }\n  workflows:\n    nightly: { p95_time_to_completion_seconds: 120 }\n",
      "test.yaml",
    );
    expect(targetsFor(policy.slo)).toMatchObject({
      task_success_rate: 0.9,
      p95_time_to_completion_seconds: 30,
    });
    expect(targetsFor(policy.slo, "nightly")).toMatchObject({
      task_success_rate: 0.9,
      p95_time_to_completion_seconds: 120,
      cost_per_successful_task_usd: 0.5,
    });
  });

  it("prices a model from the file's table", () => {
    const policy = parsePolicy(
      "prices:\n  my-model: { input_per_million: 1, output_per_million: 3 }\n",
      "test.yaml",
    );
    const table = { ...PRICES, ...policy.prices };
    expect(priceCall("my-model", { input_tokens: 1_000_000, output_tokens: 500_000 }, table)).toEqual({
      cost_usd: 2.5,
      priced: true,
    });
  });

  it.each([
    ["slo:\n  targets: { task_success_rate: 95 }\n", /slo\.targets\.task_success_rate/],
    ["slo:\n  targets: { p95_ttft: 2 }\n", /slo\.targets/],
    ["prices:\n  m: { input_per_million: -1, output_per_million: 1 }\n", /prices\.m\.input_per_million/],
    ["prices:\n  m: { input: 1 }\n", /prices\.m/],
  ])("refuses %j naming the field", (text, message) => {
    expect(() => parsePolicy(text, "test.yaml")).toThrow(message);
  });
});
