import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.js";
import { flushTracing, startTracing } from "../../observability/otel.js";
import { inSpan } from "../../observability/spans.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-trace-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("file exporter", () => {
  it("appends spans as OTLP/JSON lines, children under their parent", async () => {
    const file = path.join(dir, "spans.jsonl");
    const tracing = startTracing(loadConfig({ KEEL_TRACE_EXPORTER: "file", KEEL_TRACE_FILE: file }));
    expect(tracing).toMatchObject({ enabled: true, exporter: "file" });
    await inSpan("outer", { "keel.task.id": "t-1" }, () => inSpan("inner", {}, () => Promise.resolve()));
    await expect(
      inSpan("failing", {}, () => Promise.reject(new Error("mail to jane.roe@example.com bounced"))),
    ).rejects.toThrow();
    await flushTracing();
    const spans = fs
      .readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .flatMap((line) => {
        const body = JSON.parse(line) as {
          resourceSpans: {
            scopeSpans: {
              spans: { name: string; spanId: string; parentSpanId?: string; status: { message?: string } }[];
            }[];
          }[];
        };
        return body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
      });
    const outer = spans.find((s) => s.name === "outer")!;
    expect(spans.find((s) => s.name === "inner")!.parentSpanId).toBe(outer.spanId);
    expect(spans.find((s) => s.name === "failing")!.status.message).toBe("mail to [email] bounced");
    await tracing.shutdown();
  });
});
