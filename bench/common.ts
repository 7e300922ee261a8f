import fs from "node:fs";

/** Approval-free samples (research, data, code), so that no benchmark run waits for a person. */
export const REQUESTS = [
  "What does the incident response runbook say about SEV1 incidents?",
  "Which 5 customers generated the most revenue in 2025?",
  "Calculate the first 15 Fibonacci numbers",
  "Find the refund policy and count refunded orders by region",
  "Is 7919 a prime number?",
];

/**
 * Replaces one named section of a results file (between `<!-- name -->` and `<!-- /name -->`), keeping the rest:
 * each benchmark records its own part of bench/RESULTS.md.
 */
export function recordSection(file: string, name: string, content: string): void {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const block = `${open}\n\n${content.trim()}\n\n${close}`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  const next =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${block}${text.slice(end + close.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, next);
}
