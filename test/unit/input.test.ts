import { describe, expect, it } from "vitest";
import { exitCodeFor, InputError } from "../../core/errors.js";
import { checkRequest } from "../../policy/input.js";

describe("checkRequest", () => {
  it("trims and accepts a normal request", () => {
    expect(checkRequest("  Find the refund policy \n", 100)).toBe("Find the refund policy");
  });

  it.each([
    ["empty", ""],
    ["blank", "   \n\t "],
  ])("refuses an %s request with exit code 2", (_label, request) => {
    expect(() => checkRequest(request, 100)).toThrow(/request is empty/);
    try {
      checkRequest(request, 100);
    } catch (error) {
      expect(exitCodeFor(error)).toBe(2);
    }
  });

  it("refuses an over-long request and says the limit", () => {
    expect(() => checkRequest("x".repeat(101), 100)).toThrow(/101 characters long; the limit is 100/);
  });

  it("refuses a request that is not text", () => {
    expect(() => checkRequest(42, 100)).toThrow(InputError);
  });
});
