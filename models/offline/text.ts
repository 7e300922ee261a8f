/** Small text helpers the offline model reasons with: words, keywords, numbers, addresses, sentences. */

const STOPWORDS = new Set(
  `a an the and or but of to in on at for from by with about into over under as is are was were be been being do does did
  what which who whom whose when where why how our your their my we you they it its this that these those there here please
  me us them can could would should will shall may might must tell say says said find look up check get give show let know
  summarize summarise summary explain describe read search lookup some any all each every also then than just much many`
    .split(/\s+/)
    .filter(Boolean),
);

export function words(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu) ?? []).map((w) => w.replace(/'s$/, ""));
}

export function keywords(text: string): string[] {
  const seen = new Set<string>();
  return words(text.replace(/\S+@\S+/g, " ")).filter((w) => {
    if (STOPWORDS.has(w) || w.length < 3 || seen.has(w)) return false;
    seen.add(w);
    return true;
  });
}

export function emails(text: string): string[] {
  return [...new Set(text.match(/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g) ?? [])];
}

export function numbers(text: string): number[] {
  return (text.match(/-?\d+(?:[.,]\d+)*/g) ?? [])
    .map((n) => Number(n.replace(/,(?=\d{3}\b)/g, "")))
    .filter(Number.isFinite);
}

export function sentences(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Parses the brief a sub-agent receives (see graphs/subagent.ts taskBrief). */
export function parseBrief(brief: string): { taskId: string; objective: string; context: string } {
  const head = /^Task (\S+): ([\s\S]*?)(?:\n\n(?:Context|Constraints):|$)/.exec(brief);
  const context = /\n\nContext:\n([\s\S]*?)(?:\n\nConstraints:|$)/.exec(brief);
  return {
    taskId: head?.[1] ?? "task",
    objective: (head?.[2] ?? brief).trim(),
    context: (context?.[1] ?? "").trim(),
  };
}

/** The rows of the last `Data:` entry in a context, when an earlier task produced a table. */
export function rowsFromContext(context: string): Record<string, unknown>[] | undefined {
  const matches = [...context.matchAll(/^Data: (.*)$/gm)];
  for (const match of matches.reverse()) {
    try {
      const data = JSON.parse(match[1]!) as { rows?: unknown };
      if (Array.isArray(data.rows) && data.rows.length > 0) return data.rows as Record<string, unknown>[];
    } catch {
      // a truncated Data entry is not usable; look at an earlier one
    }
  }
  return undefined;
}

/** Earlier task summaries in a context ("[t1] …" lines). */
export function findingsFromContext(context: string): string[] {
  return [...context.matchAll(/^\[(t?[\w-]+)\] (.*)$/gm)].map((m) => `[${m[1]}] ${m[2]}`);
}
