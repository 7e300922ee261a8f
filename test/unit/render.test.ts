import { describe, expect, it } from "vitest";
import { commandName } from "../../core/config.js";
import { ago } from "../../cli/render.js";

describe("what the CLI prints for people", () => {
  it.each([
    [0, "0 s ago"],
    [59, "59 s ago"],
    [60, "1 min ago"],
    [3599, "59 min ago"],
    [7200, "2 h ago"],
    [3 * 86_400 + 5, "3 d ago"],
  ])("shows an age of %i s as %s", (seconds, text) => {
    const now = Date.UTC(2026, 11, 2);
    expect(ago(new Date(now - seconds * 1000), now)).toBe(text);
  });

  it("names the command as the shell can run it", () => {
    expect(commandName({ PATH: "/nowhere" })).toBe("npx keel");
    expect(commandName({ PATH: "/bin", npm_lifecycle_event: "start" })).toBe("npx keel");
    expect(commandName({ PATH: "/bin", npm_command: "exec" })).toBe("npx keel");
  });
});
