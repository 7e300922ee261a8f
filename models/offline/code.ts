import { numbers } from "./text.js";

/**
 * The offline code agent's program writer: recognises a few kinds of computation in the objective and writes a
 * JavaScript program for the sandbox. Data from earlier tasks is embedded in the program as a literal, so the
 * sandbox (which has no I/O) computes over it.
 */
export interface Program {
  code: string;
  describes: string;
}

function firstNumber(text: string, fallback: number): number {
  const n = numbers(text).find((x) => x > 0 && Number.isInteger(x) && x < 1e9);
  return n ?? fallback;
}

/** Splits rows into a label column and a numeric column (the first of each). */
function columns(rows: Record<string, unknown>[]): { label?: string; value?: string } {
  const first = rows[0] ?? {};
  const keys = Object.keys(first);
  const isNumeric = (k: string) =>
    rows.every((r) => r[k] !== null && r[k] !== "" && Number.isFinite(Number(r[k])));
  const value = [...keys].reverse().find(isNumeric);
  const label = keys.find((k) => k !== value);
  return { label, value };
}

/** Words that change what a computation means, which the rules here do not handle. */
const UNHANDLED =
  /\b(squares?|squared|cubes?|cubed|powers?|roots?|odd|even|multiples?|divisible|divisors?|digits?|between|range|to the power|log(?:arithm)?s?|percentile|variance|deviation|compound|interest)\b/;

export function writeProgram(
  objective: string,
  rows: Record<string, unknown>[] | undefined,
): Program | undefined {
  const o = objective.toLowerCase();
  if (/fibonacci/.test(o)) {
    const n = Math.min(firstNumber(o, 10), 90);
    return {
      describes: `the first ${n} Fibonacci numbers`,
      code: `const n = ${n};\nconst seq = [0, 1];\nwhile (seq.length < n) seq.push(seq[seq.length - 1] + seq[seq.length - 2]);\nseq.slice(0, n);`,
    };
  }
  const isPrime = `function isPrime(n) {\n  if (n < 2) return false;\n  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;\n  return true;\n}\n`;
  const primeCheck =
    /\bis\s+(\d+)\s+(?:a\s+)?prime\b/.exec(o) ?? /\b(\d+)\s+(?:is\s+)?(?:a\s+)?prime\b/.exec(o);
  if (primeCheck && !/\bprimes\b/.test(o)) {
    const n = Number(primeCheck[1]);
    return { describes: `whether ${n} is prime`, code: `${isPrime}({ n: ${n}, prime: isPrime(${n}) });` };
  }
  if (/\bprimes?\b/.test(o)) {
    const n = Math.min(firstNumber(o, 100), 1_000_000);
    const firstN = /\bfirst\s+\d+\s+primes\b/.test(o);
    return firstN
      ? {
          describes: `the first ${n} primes`,
          code: `${isPrime}const out = [];\nfor (let k = 2; out.length < ${n}; k++) if (isPrime(k)) out.push(k);\nout;`,
        }
      : {
          describes: `the primes below ${n}`,
          code: `${isPrime}const out = [];\nfor (let k = 2; k < ${n}; k++) if (isPrime(k)) out.push(k);\nout;`,
        };
  }
  if (/factorial|\d+!/.test(o)) {
    const n = Math.min(firstNumber(o, 10), 170);
    return { describes: `${n}!`, code: `let f = 1;\nfor (let k = 2; k <= ${n}; k++) f *= k;\nf;` };
  }
  if (rows && rows.length > 0) {
    const { label, value } = columns(rows);
    if (value) {
      const data = `const rows = ${JSON.stringify(rows)};\nconst values = rows.map((r) => Number(r[${JSON.stringify(value)}]));\n`;
      const labelOf = label ? `String(r[${JSON.stringify(label)}])` : "String(i + 1)";
      if (/share|percent|proportion|contribut/.test(o)) {
        return {
          describes: `each ${label ?? "row"}'s share of the total ${value}`,
          code: `${data}const total = values.reduce((a, b) => a + b, 0);\nconst shares = rows.map((r, i) => ({ ${label ?? "row"}: ${labelOf}, ${value}: values[i], share_percent: Math.round((values[i] / total) * 10000) / 100 }));\n({ total, shares });`,
        };
      }
      if (/growth|change|increase|trend/.test(o)) {
        return {
          describes: `the period-over-period growth of ${value}`,
          code: `${data}const growth = values.slice(1).map((v, i) => ({ ${label ?? "period"}: ${label ? `String(rows[i + 1][${JSON.stringify(label)}])` : "String(i + 2)"}, growth_percent: Math.round(((v - values[i]) / values[i]) * 10000) / 100 }));\nconst average = growth.reduce((a, g) => a + g.growth_percent, 0) / growth.length;\n({ growth, average_growth_percent: Math.round(average * 100) / 100 });`,
        };
      }
      return {
        describes: `statistics of ${value}`,
        code: `${data}const sorted = [...values].sort((a, b) => a - b);\nconst sum = values.reduce((a, b) => a + b, 0);\nconst mid = Math.floor(sorted.length / 2);\n({ count: values.length, sum, average: Math.round((sum / values.length) * 100) / 100, median: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, min: sorted[0], max: sorted[sorted.length - 1] });`,
      };
    }
  }
  // A sum over a range: "the sum of (the squares|cubes of) (the numbers) 1 to 10" / "from 1 through 100".
  const range =
    /\bsum of (?:the )?(?:(squares|cubes) of )?(?:the )?(?:(?:whole |natural )?(?:numbers|integers) )?(?:from )?(-?\d+) (?:to|through|until|-) (-?\d+)\b/.exec(
      o,
    );
  if (range) {
    const [, power, from, to] = range;
    const exponent = power === "squares" ? 2 : power === "cubes" ? 3 : 1;
    const term = exponent === 1 ? "k" : `k ** ${exponent}`;
    return {
      describes: `the sum of ${power ?? "the numbers"}${power ? " of" : ""} ${from} to ${to}`,
      code: `let sum = 0;\nfor (let k = ${from}; k <= ${to}; k++) sum += ${term};\nsum;`,
    };
  }
  // Fail closed: a list statistic is only right when the numbers are the list. Words that change what is computed
  // (squares of, odd, between, …) with no rule above mean the offline model does not understand the request.
  if (UNHANDLED.test(o)) return undefined;
  const listed = numbers(o);
  if (/\b(average|mean|median|sum|total|max|min)\b/.test(o) && listed.length >= 2) {
    return {
      describes: `statistics of ${listed.join(", ")}`,
      code: `const values = ${JSON.stringify(listed)};\nconst sum = values.reduce((a, b) => a + b, 0);\nconst sorted = [...values].sort((a, b) => a - b);\nconst mid = Math.floor(sorted.length / 2);\n({ sum, average: sum / values.length, median: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, min: sorted[0], max: sorted[sorted.length - 1] });`,
    };
  }
  const expression = /[-+*/^%().\d\s]*\d\s*[-+*/^%]\s*[-+*/^%().\d\s]*\d\)?/.exec(objective)?.[0]?.trim();
  if (expression) {
    return { describes: expression, code: `${expression.replace(/\^/g, "**")};` };
  }
  return undefined;
}
