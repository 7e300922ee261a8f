/**
 * LLM-free prompt-injection detection: named patterns and a few heuristics. It runs over requests before the
 * orchestrator sees them and over tool outputs before they re-enter a model.
 */
export type InjectionReason =
  | "instruction_override"
  | "role_play"
  | "system_prompt_extraction"
  | "encoded_payload"
  | "tool_call_smuggling"
  | "hidden_text";

export interface Finding {
  reason: InjectionReason;
  /** The text that matched (for encoded payloads, the encoded run). */
  match: string;
  index: number;
}

const PATTERNS: readonly [InjectionReason, RegExp][] = [
  [
    "instruction_override",
    /\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|preceding|all|any|your|the|these|those)\b[^.\n]{0,30}?\b(?:instructions?|rules|guidelines|directives|prompts?|polic(?:y|ies)|constraints|guardrails|safety)\b/i,
  ],
  ["instruction_override", /\bnew (?:instructions|rules|directives)\s*:/i],
  [
    "instruction_override",
    /\b(?:from now on|henceforth)\b[^.\n]{0,40}\b(?:you (?:will|must|are)|respond|answer|obey|always)\b/i,
  ],
  ["instruction_override", /\bdo not (?:follow|obey) (?:your|the|any) (?:rules|instructions|policy)\b/i],
  [
    "role_play",
    /\b(?:you are now|pretend (?:to be|you are)|act as (?:if you (?:were|are) )?(?:an? )?(?:unrestricted|unfiltered|jailbroken|evil|dan\b|developer|admin|root|system))/i,
  ],
  ["role_play", /\b(?:DAN mode|developer mode|jailbreak|do anything now|god mode)\b/i],
  ["role_play", /\broleplay as\b|\bstay in character\b/i],
  [
    "system_prompt_extraction",
    /\b(?:reveal|print|show|repeat|output|display|leak|tell me|give me|what (?:is|are))\b[^.\n]{0,30}\b(?:your|the) (?:system|hidden|initial|original|secret) (?:prompt|instructions|message|rules)\b/i,
  ],
  [
    "system_prompt_extraction",
    /\b(?:repeat|print|output) (?:everything|all(?: the)? text|the text) (?:above|before)\b/i,
  ],
  ["system_prompt_extraction", /\bwhat (?:were|are) you told before\b/i],
  [
    "tool_call_smuggling",
    /<\/?(?:tool_call|function_call|tool_use|system|assistant|im_start|im_end)\b[^>]*>|<\|(?:im_start|im_end|system|assistant|endoftext)\|>|\[\/?INST\]/i,
  ],
  [
    "tool_call_smuggling",
    /"(?:name|tool|function)"\s*:\s*"(?:send_message|run_sql|run_javascript|draft_message|read_document|search_kb|list_tables|describe_table)"/i,
  ],
  [
    "tool_call_smuggling",
    /\b(?:call|invoke|use|run|execute)\b[^.\n]{0,20}\b(?:send_message|run_sql|run_javascript)\b[^.\n]{0,40}\b(?:with|using|args|arguments)\b/i,
  ],
  ["tool_call_smuggling", /\b(?:tool_calls|function_call)\s*[:=]/i],
  [
    "encoded_payload",
    /\b(?:decode|base64|rot13|hex)\b[^.\n]{0,40}\b(?:and|then)\b[^.\n]{0,20}\b(?:follow|execute|run|obey|do what)\b/i,
  ],
];

// Zero-width characters, bidi controls and Unicode tag characters hide text from a reader but not from a model.
const HIDDEN = /[\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]|[\u{E0000}-\u{E007F}]/gu;
const BASE64_RUN = /[A-Za-z0-9+/]{24,}={0,2}/g;
const HEX_RUN = /\b(?:[0-9a-f]{2}){16,}\b/gi;

function scanPatterns(text: string, offset = 0, encoded?: string): Finding[] {
  const findings: Finding[] = [];
  for (const [reason, pattern] of PATTERNS) {
    const hit = pattern.exec(text);
    if (hit) {
      findings.push(
        encoded === undefined
          ? { reason, match: hit[0], index: offset + hit.index }
          : { reason: "encoded_payload", match: encoded, index: offset },
      );
    }
  }
  return findings;
}

const printable = (s: string) => s.length > 0 && /^[\x20-\x7E\s]+$/.test(s);

/** Encoded runs that decode to readable text carrying an injection. */
function scanEncoded(text: string): Finding[] {
  const findings: Finding[] = [];
  for (const hit of text.matchAll(BASE64_RUN)) {
    const decoded = Buffer.from(hit[0], "base64").toString("utf8");
    if (printable(decoded) && scanPatterns(decoded, hit.index, hit[0]).length > 0)
      findings.push({ reason: "encoded_payload", match: hit[0], index: hit.index });
  }
  for (const hit of text.matchAll(HEX_RUN)) {
    const decoded = Buffer.from(hit[0], "hex").toString("utf8");
    if (printable(decoded) && scanPatterns(decoded, hit.index, hit[0]).length > 0)
      findings.push({ reason: "encoded_payload", match: hit[0], index: hit.index });
  }
  return findings;
}

/** Every injection signal found in the text, in order of position. */
export function detectInjection(text: string): Finding[] {
  const hidden = [...text.matchAll(HIDDEN)].map((m): Finding => ({
    reason: "hidden_text",
    match: m[0],
    index: m.index,
  }));
  // Patterns run on the text as a reader sees it, so hidden characters cannot split a keyword.
  const visible = text.replace(HIDDEN, "");
  const found = [...scanPatterns(visible), ...scanEncoded(visible), ...hidden.slice(0, 1)];
  const unique = new Map(found.map((f) => [`${f.reason}:${f.match}`, f]));
  return [...unique.values()].sort((a, b) => a.index - b.index);
}

/**
 * The text with every finding made inert: hidden characters dropped, matched instructions replaced by a
 * marker naming why, so a model reads that something was removed and cannot follow it.
 */
export function neutralise(text: string, findings: readonly Finding[]): string {
  let out = text.replace(HIDDEN, "");
  for (const f of findings) {
    if (f.reason === "hidden_text") continue;
    out = out.split(f.match).join(`[removed by Keel: ${f.reason.replace(/_/g, " ")}]`);
  }
  return out;
}
