import { describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.js";

describe("configuration from the environment", () => {
  it("has defaults for everything", () => {
    const config = loadConfig({}, "/srv/keel");
    expect(config).toMatchObject({
      dataDir: "/srv/keel/.keel",
      model: { name: "offline" },
      runtime: { leaseSeconds: 30 },
      resilience: { retries: 3, breakerThreshold: 5 },
    });
    expect(config.webhookUrl).toBeUndefined();
    expect(config.runtime.purgeAfterDays).toBeUndefined(); // finished requests are kept unless asked
    expect(loadConfig({ KEEL_PURGE_AFTER_DAYS: "90" }).runtime.purgeAfterDays).toBe(90);
    expect(config.server).toEqual({
      rateLimitPerMinute: 600,
      requestTimeoutMs: 30_000,
      corsOrigins: [],
      graphDefaults: {},
      testEndpoints: false,
    });
    expect(loadConfig({ KEEL_RATE_LIMIT: "0" }).server.rateLimitPerMinute).toBe(0);
    expect(
      loadConfig({ KEEL_CORS_ORIGINS: "https://inbox.example, http://localhost:3000/" }).server.corsOrigins,
    ).toEqual(["https://inbox.example", "http://localhost:3000"]);
  });

  it.each([
    ["KEEL_WEBHOOK_URL", "not a url", /KEEL_WEBHOOK_URL=not a url is not an http\(s\) URL/],
    ["KEEL_WEBHOOK_URL", "ftp://chat.example/hook", /is not an http\(s\) URL/],
    ["KEEL_LEASE_SECONDS", "soon", /KEEL_LEASE_SECONDS=soon is not a positive number/],
    ["KEEL_BREAKER_THRESHOLD", "-1", /KEEL_BREAKER_THRESHOLD=-1 is not a positive number/],
    ["KEEL_TRACE_EXPORTER", "jaeger", /KEEL_TRACE_EXPORTER=jaeger is not one of none, otlp, file, console/],
    ["KEEL_TRACE_EXPORTER", "otlp", /KEEL_TRACE_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT/],
    ["KEEL_TRACE_EXPORTER", "file", /KEEL_TRACE_EXPORTER=file needs KEEL_TRACE_FILE/],
    [
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "localhost:4318",
      /is not an http\(s\) URL; give e.g. http:\/\/localhost:4318/,
    ],
    [
      "KEEL_LOG_LEVEL",
      "loud",
      /KEEL_LOG_LEVEL=loud is not one of fatal, error, warn, info, debug, trace, silent/,
    ],
    [
      "KEEL_TRAJECTORY_RETENTION_DAYS",
      "forever",
      /KEEL_TRAJECTORY_RETENTION_DAYS=forever is not a positive number/,
    ],
    ["KEEL_PURGE_AFTER_DAYS", "never", /KEEL_PURGE_AFTER_DAYS=never is not a positive number/],
    ["KEEL_PURGE_AFTER_DAYS", "0", /KEEL_PURGE_AFTER_DAYS=0 is not a positive number/],
    ["KEEL_RATE_LIMIT", "lots", /KEEL_RATE_LIMIT=lots is not a positive number/],
    ["KEEL_DB_POOL_SIZE", "1", /KEEL_DB_POOL_SIZE=1 is too small: Keel needs at least 2 connections/],
    ["KEEL_DB_POOL_SIZE", "2.5", /KEEL_DB_POOL_SIZE=2.5 is too small/],
    ["KEEL_REQUEST_TIMEOUT_MS", "0", /KEEL_REQUEST_TIMEOUT_MS=0 is not a positive number/],
    ["KEEL_CORS_ORIGINS", "inbox.example", /"inbox.example" is not an origin; give scheme, host and port/],
    ["KEEL_CORS_ORIGINS", "https://inbox.example/app", /"https:\/\/inbox.example\/app" is not an origin/],
  ])("refuses %s=%s with a message that says what to give", (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it("reads the policy file and the webhook when given", () => {
    const config = loadConfig(
      { KEEL_POLICY_FILE: "ops/policy.yaml", KEEL_WEBHOOK_URL: "https://chat.example/hooks/ops" },
      "/srv/keel",
    );
    expect(config.policyFile).toBe("/srv/keel/ops/policy.yaml");
    expect(config.webhookUrl).toBe("https://chat.example/hooks/ops");
  });

  it("traces to OTLP when an endpoint is set, to nothing otherwise, and keeps LangSmith off without a key", () => {
    expect(loadConfig({}).observability).toMatchObject({
      exporter: "none",
      trajectory: true,
      retentionDays: 30,
      langsmith: { enabled: false, project: "keel", flushMs: 2000 },
    });
    const otlp = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).observability;
    expect(otlp).toMatchObject({ exporter: "otlp", otlpEndpoint: "http://collector:4318/v1/traces" });
    const traces = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://other:4318/traces",
    }).observability;
    expect(traces.otlpEndpoint).toBe("http://other:4318/traces");
    expect(loadConfig({ KEEL_TRAJECTORY: "off" }).observability.trajectory).toBe(false);
    expect(loadConfig({ LANGCHAIN_TRACING_V2: "true" }).observability.langsmith.enabled).toBe(true);
  });
});
