import { fakeModel, type FakeBuiltModel } from "@langchain/core/testing";
import type pg from "pg";
import type { KeelConfig } from "../../core/config.js";
import type { GraphDeps, ModelRole } from "../../graphs/deps.js";
import { DEFAULT_POLICY, type Policy } from "../../policy/file.js";
import { Dependencies } from "../../policy/resilience.js";

/**
 * Graph dependencies with one scripted model per role, so that parallel sub-agents never race for one queue.
 * A role that is called without a script fails the test loudly.
 */
export function scriptedDeps(
  pool: pg.Pool,
  limits: KeelConfig["limits"],
  models: Partial<Record<ModelRole, FakeBuiltModel>>,
  extra: { policy?: Policy; price?: GraphDeps["price"] } = {},
): GraphDeps & {
  models: Partial<Record<ModelRole, FakeBuiltModel>>;
  bound: Partial<Record<ModelRole, string[]>>;
} {
  const bound: Partial<Record<ModelRole, string[]>> = {};
  return {
    models,
    bound,
    limits,
    policy: extra.policy ?? DEFAULT_POLICY,
    dependencies: new Dependencies({ baseMs: 1, halfOpenAfterMs: 200 }),
    price: extra.price ?? (() => 0),
    db: () => Promise.resolve(pool),
    model: (role) => {
      const model = models[role];
      if (!model) throw new Error(`No scripted model for role "${role}"`);
      // Record which tools each role is offered; the fake itself does not keep them.
      return new Proxy(model, {
        get(target, prop, receiver) {
          if (prop !== "bindTools") return Reflect.get(target, prop, receiver) as unknown;
          return (tools: { function?: { name: string }; name?: string }[]) => {
            bound[role] = tools.map((x) => x.function?.name ?? x.name ?? "?");
            return target.bindTools(tools as never);
          };
        },
      });
    },
  };
}

export { fakeModel };
