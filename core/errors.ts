/**
 * Keel's few typed errors. Each names who is at fault and tells the reader what to do next.
 * The CLI maps them to exit codes: user and plan errors -> 2, everything else -> 1.
 */
export type KeelErrorCode =
  | "invalid_request"
  | "invalid_plan"
  | "invalid_argument"
  | "not_found"
  | "conflict"
  | "model_error"
  | "tool_error"
  | "timeout"
  | "database_error"
  | "configuration_error"
  | "blocked"
  | "budget_exceeded"
  | "dependency_failed";

export type Fault = "user" | "model" | "system" | "policy";

export class KeelError extends Error {
  readonly code: KeelErrorCode;
  /**
   * Who caused it: the person or script calling Keel, the model's output, Keel/its environment, or a rule of
   * the policy (a guardrail or a budget) that the work ran into.
   */
  readonly fault: Fault;

  constructor(code: KeelErrorCode, fault: Fault, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.fault = fault;
  }
}

/** The request or a command argument is wrong; fix the input and try again. */
export class InputError extends KeelError {
  constructor(message: string, code: KeelErrorCode = "invalid_request", options?: ErrorOptions) {
    super(code, "user", message, options);
  }
}

/** The planner produced something that cannot be executed (bad schema, unknown agent, cycle, …). */
export class PlanError extends KeelError {
  readonly problems: string[];
  constructor(problems: string[], options?: ErrorOptions) {
    super(
      "invalid_plan",
      "model",
      `The plan was rejected: ${problems.join("; ")}. Nothing was executed; rephrase the request or use a stronger model.`,
      options,
    );
    this.problems = problems;
  }
}

/** A named thing (thread, document, table) does not exist. */
export class NotFoundError extends KeelError {
  constructor(message: string) {
    super("not_found", "user", message);
  }
}

/** Keel's environment failed: database, configuration, model server. */
export class SystemError extends KeelError {
  constructor(code: KeelErrorCode, message: string, options?: ErrorOptions) {
    super(code, "system", message, options);
  }
}

/** Raised by a tool for a call that must be refused; the message goes back to the agent, not to the user. */
export class ToolCallError extends KeelError {
  constructor(message: string, code: KeelErrorCode = "tool_error") {
    super(code, "model", message);
  }
}

/**
 * A guardrail or budget stopped the work. `reason` names the rule (e.g. `injection:instruction_override`,
 * `budget_exceeded:tokens`); retrying the same request cannot help.
 */
export class PolicyError extends KeelError {
  constructor(
    code: "blocked" | "budget_exceeded",
    readonly reason: string,
    message: string,
  ) {
    super(code, "policy", message);
  }
}

/** An outside dependency (the model endpoint, an external tool) kept failing; says which and how often. */
export class DependencyError extends KeelError {
  constructor(
    readonly dependency: string,
    readonly failures: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super("dependency_failed", "system", message, options);
  }
}

export function isKeelError(error: unknown): error is KeelError {
  return error instanceof KeelError;
}

/** The exit code a CLI process ends with for this error. */
export function exitCodeFor(error: unknown): number {
  return isKeelError(error) &&
    (error.fault === "user" || error.fault === "policy" || error.code === "invalid_plan")
    ? 2
    : 1;
}
