import { electronicFormatIBAN, isValidIBAN } from "ibantools";

/**
 * PII detection and redaction for what Keel writes down about a run (tool-call logs, decisions, guardrail
 * events, traces). Requests themselves may carry PII the work needs (a recipient's address); it is the record
 * of the work that must not. Numbers are redacted only when they validate (Luhn for cards, the IBAN checksum),
 * so order ids and amounts stay readable.
 */
export type PiiKind = "email" | "phone" | "card" | "iban" | "us_ssn" | "uk_nino" | "ip_address";

interface Detector {
  kind: PiiKind;
  pattern: RegExp;
  valid?: (match: string) => boolean;
}

/** Luhn checksum, the check digit scheme of payment card numbers. */
export function luhnValid(digits: string): boolean {
  const d = digits.replace(/\D/g, "");
  if (d.length < 13 || d.length > 19) return false;
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let n = Number(d[d.length - 1 - i]);
    if (i % 2 === 1) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
  }
  return sum % 10 === 0;
}

const DETECTORS: readonly Detector[] = [
  { kind: "email", pattern: /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g },
  {
    kind: "iban",
    pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g,
    valid: (m) => isValidIBAN(electronicFormatIBAN(m) ?? ""),
  },
  { kind: "card", pattern: /\b(?:\d[ -]?){12,18}\d\b/g, valid: luhnValid },
  { kind: "us_ssn", pattern: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g },
  { kind: "uk_nino", pattern: /\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g },
  {
    kind: "phone",
    pattern: /(?<![\w.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}(?![\w.])/g,
  },
  { kind: "ip_address", pattern: /\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b/g },
];

export interface PiiFinding {
  kind: PiiKind;
  match: string;
  index: number;
}

export function detectPii(text: string): PiiFinding[] {
  const findings: PiiFinding[] = [];
  const taken: [number, number][] = [];
  for (const { kind, pattern, valid } of DETECTORS) {
    for (const hit of text.matchAll(pattern)) {
      const start = hit.index;
      const end = start + hit[0].length;
      if (taken.some(([s, e]) => start < e && end > s)) continue; // an earlier, more specific kind owns it
      if (valid && !valid(hit[0])) continue;
      taken.push([start, end]);
      findings.push({ kind, match: hit[0], index: start });
    }
  }
  return findings.sort((a, b) => a.index - b.index);
}

/** Personal data whose leak does harm on its own: payment cards, bank accounts, national id numbers. */
export const HIGH_RISK_PII: ReadonlySet<PiiKind> = new Set(["card", "iban", "us_ssn", "uk_nino"]);

/** The high-risk kinds of personal data anywhere in a JSON-like value, each once. */
export function highRiskPii(value: unknown): PiiKind[] {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? null);
  return [...new Set(detectPii(text).map((f) => f.kind))].filter((k) => HIGH_RISK_PII.has(k));
}

/** The text with every PII finding (or, given `kinds`, every finding of those kinds) replaced by `[<kind>]`. */
export function redact(text: string, kinds?: ReadonlySet<PiiKind>): string {
  let out = "";
  let at = 0;
  for (const f of detectPii(text)) {
    if (kinds && !kinds.has(f.kind)) continue;
    out += `${text.slice(at, f.index)}[${f.kind}]`;
    at = f.index + f.match.length;
  }
  return out + text.slice(at);
}

/** A JSON-like value with every string redacted (keys are kept); `kinds` as for `redact`. */
export function redactDeep<T>(value: T, kinds?: ReadonlySet<PiiKind>): T {
  if (typeof value === "string") return redact(value, kinds) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactDeep(v, kinds)) as T;
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, kinds)])) as T;
  }
  return value;
}

/** What stands in for erased text. */
export const PURGED = "[purged]";

/**
 * Keeps a JSON value's shape and drops its content: every string becomes `[purged]`; keys, numbers, booleans and
 * nulls stay, so a purged record still shows which arguments a call had and what it cost.
 */
export function eraseStrings(value: unknown): unknown {
  if (typeof value === "string") return PURGED;
  if (Array.isArray(value)) return value.map(eraseStrings);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, eraseStrings(v)]));
  return value;
}
