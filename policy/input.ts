import { InputError } from "../core/errors.js";

/**
 * LLM-free checks on a request before any model sees it. Run by the CLI before anything is stored, and again by
 * the graph's guard_input node for callers that reach the graph directly (Studio, SDK).
 */
export function checkRequest(request: unknown, maxChars: number): string {
  if (typeof request !== "string") {
    throw new InputError(`The request must be text, got ${request === null ? "null" : typeof request}.`);
  }
  const trimmed = request.trim();
  if (trimmed.length === 0) {
    throw new InputError(
      'The request is empty. Say what you want done, e.g. keel run "Summarize our refund policy".',
    );
  }
  if (trimmed.length > maxChars) {
    throw new InputError(
      `The request is ${trimmed.length} characters long; the limit is ${maxChars}. Shorten it or split it into several requests (KEEL_MAX_REQUEST_CHARS raises the limit).`,
    );
  }
  return trimmed;
}
