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
  });

  it.each([
    ["KEEL_WEBHOOK_URL", "not a url", /KEEL_WEBHOOK_URL=not a url is not an http\(s\) URL/],
    ["KEEL_WEBHOOK_URL", "ftp://chat.example/hook", /is not an http\(s\) URL/],
    ["KEEL_LEASE_SECONDS", "soon", /KEEL_LEASE_SECONDS=soon is not a positive number/],
    ["KEEL_BREAKER_THRESHOLD", "-1", /KEEL_BREAKER_THRESHOLD=-1 is not a positive number/],
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
});
