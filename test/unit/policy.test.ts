import { POLICY_CATALOG } from "../../agents/index.js";
import { describe, expect, it } from "vitest";
import path from "node:path";
import { DEFAULT_POLICY, loadPolicy, parsePolicy } from "../../policy/file.js";
import { decide, type DecisionInput, type EffectScope, type RiskTier } from "../../policy/risk.js";

const call = (
  risk: RiskTier,
  reversible: boolean,
  effects: EffectScope,
  confidence: number | undefined,
  extra: Partial<DecisionInput> = {},
): DecisionInput => ({
  tool: "some_tool",
  agent: "communication",
  risk,
  reversible,
  effects,
  args: {},
  confidence,
  ...extra,
});

// The documented table: tier decides; a low (or missing) confidence on a tool that writes or cannot be undone
// escalates to a person. "-" is no stated confidence.
//   risk      reversible  writes  confidence -> decision
const TABLE = `
low       yes  no   -    autonomous
low       yes  no   0.3  autonomous
low       yes  no   0.9  autonomous
low       no   no   -    async_approval
low       no   no   0.3  async_approval
low       no   no   0.9  autonomous
low       yes  yes  -    async_approval
low       yes  yes  0.3  async_approval
low       yes  yes  0.9  autonomous
low       no   yes  -    async_approval
low       no   yes  0.3  async_approval
low       no   yes  0.9  autonomous
medium    yes  no   -    logged
medium    yes  no   0.3  logged
medium    yes  no   0.9  logged
medium    no   no   -    async_approval
medium    no   no   0.3  async_approval
medium    no   no   0.9  logged
medium    yes  yes  -    async_approval
medium    yes  yes  0.3  async_approval
medium    yes  yes  0.9  logged
medium    no   yes  -    async_approval
medium    no   yes  0.3  async_approval
medium    no   yes  0.9  logged
high      yes  no   -    async_approval
high      yes  no   0.3  async_approval
high      yes  no   0.9  async_approval
high      no   no   -    async_approval
high      no   no   0.3  async_approval
high      no   no   0.9  async_approval
high      yes  yes  -    async_approval
high      yes  yes  0.3  async_approval
high      yes  yes  0.9  async_approval
high      no   yes  -    async_approval
high      no   yes  0.3  async_approval
high      no   yes  0.9  async_approval
critical  yes  no   -    sync_approval
critical  yes  no   0.3  sync_approval
critical  yes  no   0.9  sync_approval
critical  no   no   -    sync_approval
critical  no   no   0.3  sync_approval
critical  no   no   0.9  sync_approval
critical  yes  yes  -    sync_approval
critical  yes  yes  0.3  sync_approval
critical  yes  yes  0.9  sync_approval
critical  no   yes  -    sync_approval
critical  no   yes  0.3  sync_approval
critical  no   yes  0.9  sync_approval
`
  .trim()
  .split("\n")
  .map((line) => line.trim().split(/\s+/));

describe("risk policy", () => {
  it.each(TABLE)(
    "%s risk, reversible %s, writes %s, confidence %s -> %s",
    (risk, rev, writes, conf, expected) => {
      const input = call(
        risk as RiskTier,
        rev === "yes",
        writes === "yes" ? "internal" : "none",
        conf === "-" ? undefined : Number(conf),
      );
      const decision = decide(input, DEFAULT_POLICY);
      expect(decision.decision).toBe(expected);
      expect(decision.reasons.length).toBeGreaterThan(0);
    },
  );

  it("covers every tier x reversibility x writes x confidence combination", () => {
    expect(new Set(TABLE.map((r) => r.slice(0, 4).join(" "))).size).toBe(4 * 2 * 2 * 3);
  });

  it("says why a call needs a person", () => {
    const { reasons } = decide(call("low", true, "internal", undefined), DEFAULT_POLICY);
    expect(reasons.join("; ")).toMatch(/no confidence was stated for a tool that writes: a person decides/);
    const low = decide(call("medium", false, "external", 0.5), DEFAULT_POLICY);
    expect(low.reasons.join("; ")).toMatch(/confidence 0.5 is below 0.7/);
  });

  it("applies the policy file: tiers, a tool's override, a per-agent decision and argument rules", () => {
    const policy = parsePolicy(
      `
tiers: { high: sync_approval }
low_confidence_below: 0.5
tools:
  draft_message: { decision: logged }
  send_message: { agents: { communication: async_approval } }
rules:
  - { tool: send_message, arg: to, not_matches: "@harbor\\\\.example$", decision: sync_approval, reason: "recipient outside the company" }
`,
      "test.yaml",
    );
    expect(decide(call("high", true, "internal", 0.9, { tool: "x" }), policy).decision).toBe("sync_approval");
    expect(decide(call("low", true, "none", 0.9, { tool: "draft_message" }), policy).decision).toBe("logged");
    expect(decide(call("medium", true, "internal", 0.6), policy).decision).toBe("logged"); // 0.6 is not low here
    const inside = call("high", true, "internal", 0.9, {
      tool: "send_message",
      args: { to: "ops@harbor.example" },
    });
    expect(decide(inside, policy).decision).toBe("async_approval");
    const outside = { ...inside, args: { to: "someone@elsewhere.example" } };
    const decided = decide(outside, policy);
    expect(decided.decision).toBe("sync_approval");
    expect(decided.reasons.join("; ")).toMatch(/recipient outside the company/);
  });
});

describe("high-risk personal data in outgoing calls", () => {
  it.each([
    ["a card number", "Card 4111 1111 1111 1111, exp 12/29", "card"],
    ["a national id", "SSN 123-45-6789", "us_ssn"],
    ["an IBAN", "Pay to DE89 3704 0044 0532 0130 00", "iban"],
  ])("escalates a call that carries %s to a sync approval, naming it", (_what, body, kind) => {
    const d = decide(
      call("high", true, "internal", 0.95, { tool: "send_message", args: { body } }),
      DEFAULT_POLICY,
    );
    expect(d.decision).toBe("sync_approval");
    expect(d.reasons.join("; ")).toContain(`the call carries high-risk personal data (${kind})`);
  });

  it("leaves calls without it, and read-only tools, alone", () => {
    const order = { body: "Order 4111111111111112 shipped" }; // not a valid card number (Luhn)
    expect(decide(call("high", true, "internal", 0.95, { args: order }), DEFAULT_POLICY).decision).toBe(
      "async_approval",
    );
    const read = { query: "card 4111 1111 1111 1111" };
    expect(decide(call("low", true, "none", undefined, { args: read }), DEFAULT_POLICY).decision).toBe(
      "autonomous",
    );
  });
});

describe("policy file", () => {
  it("an empty file is the default policy", () => {
    expect(parsePolicy("", "empty.yaml")).toEqual(DEFAULT_POLICY);
  });

  it("the documented example file is valid and states the defaults", () => {
    expect(
      loadPolicy(path.join(import.meta.dirname, "../../keel.policy.example.yaml"), POLICY_CATALOG),
    ).toEqual(DEFAULT_POLICY);
  });

  it("reports a policy file that cannot be read", () => {
    expect(() => loadPolicy("/nonexistent/keel.policy.yaml", POLICY_CATALOG)).toThrow(
      /Cannot read the policy file \/nonexistent\/keel.policy.yaml \(ENOENT\)/,
    );
  });

  it.each([
    ["not YAML", "tiers: [unclosed", /empty\.yaml is not valid YAML at line 1/],
    ["an alias to no anchor", "*!", /empty\.yaml is not valid YAML: Unresolved alias/],
    ["an unknown decision", "tiers: { low: maybe }", /tiers\.low: Invalid option/],
    ["an unknown field", "teirs: {}", /Unrecognized key: "teirs"/],
    ["a budget that is not positive", "budgets: { tokens: -5 }", /budgets\.tokens: Too small/],
    [
      "an unknown retention",
      "retention: { checkpoints: { then: forever } }",
      /retention\.checkpoints\.then: Invalid option/,
    ],
    [
      "a negative retention period",
      "retention: { workflows: { nightly: { keep_all_days: -1 } } }",
      /retention\.workflows\.nightly\.keep_all_days: Too small/,
    ],
    [
      "a rollout sample of zero",
      "rollout: { analysis: { min_sample: 0 } }",
      /rollout\.analysis\.min_sample: Too small/,
    ],
    [
      "a rollout latency ratio below 1",
      "rollout: { analysis: { max_latency_ratio: 0.5 } }",
      /rollout\.analysis\.max_latency_ratio: Too small/,
    ],
    [
      "a rollout webhook that is not a URL",
      "rollout: { webhook_url: slack }",
      /rollout\.webhook_url: Invalid URL/,
    ],
    [
      "a rule without a pattern",
      "rules: [{ tool: a, arg: b, decision: logged, reason: r }]",
      /a rule needs matches or not_matches/,
    ],
    [
      "a bad regular expression",
      'rules: [{ tool: a, arg: b, matches: "(", decision: logged, reason: r }]',
      /invalid regular expression/,
    ],
  ])("reports %s clearly, naming the file and the field", (_name, text, message) => {
    expect(() => parsePolicy(text, "empty.yaml")).toThrow(message);
  });
  it.each([
    [
      "a misspelt tool",
      "tools:\n  send_mesage: { decision: sync_approval }\n",
      /line 2: tools\.send_mesage names the tool "send_mesage", which does not exist; did you mean "send_message"\?/,
    ],
    [
      "a rule on a misspelt tool",
      "rules:\n  - tool: send_mesage\n    arg: to\n    matches: x\n    decision: logged\n    reason: r\n",
      /line 2: rules\.0\.tool names the tool "send_mesage", which does not exist; did you mean "send_message"\?/,
    ],
    [
      "a rule on a misspelt argument",
      "rules:\n  - tool: send_message\n    arg: too\n    matches: x\n    decision: logged\n    reason: r\n",
      /line 3: rules\.0\.arg names "too", which is not an argument of send_message; did you mean "to"\?/,
    ],
    [
      "an agent that does not exist",
      "tools:\n  send_message:\n    agents: { comunication: sync_approval }\n",
      /line 3: tools\.send_message\.agents\.comunication names the agent "comunication", which does not exist; did you mean "communication"\?/,
    ],
    [
      "an agent the tool is not offered to",
      "tools:\n  send_message:\n    agents: { research: sync_approval }\n",
      /send_message is not offered to the research agent \(only to communication\), so the rule could never apply/,
    ],
  ])("refuses %s, with its line and the closest valid name", (_name, text, message) => {
    expect(() => parsePolicy(text, "keel.policy.yaml", POLICY_CATALOG)).toThrow(message);
    expect(() => parsePolicy(text, "keel.policy.yaml", POLICY_CATALOG)).toThrow(/^keel\.policy\.yaml names/);
  });

  it("accepts rules that name real tools, arguments and agents", () => {
    const text =
      "tools:\n  send_message: { agents: { communication: sync_approval } }\nrules:\n  - { tool: send_message, arg: to, matches: x, decision: logged, reason: r }\n";
    expect(parsePolicy(text, "keel.policy.yaml", POLICY_CATALOG).rules).toHaveLength(1);
  });
});
