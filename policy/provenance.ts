/**
 * The provenance rule: a side effect goes only where the requester asked. A side-effecting call whose target —
 * a recipient, a channel, a URL — does not appear in the requester's own instruction came from somewhere else:
 * a tool's output, a document, content the requester quoted or pasted, or the model itself. Such a call needs
 * the strongest approval, with the source named. The rule needs no detection, so it holds for an injected
 * instruction that no pattern recognises and for a model that obeys it.
 */

/** What kind of value a tool's target argument holds, which decides how it is looked for in the instruction. */
export type TargetKind = "email" | "channel" | "url";

/** The requester's request, split into their own words and what they quoted or pasted into it. */
export interface Instruction {
  own: string;
  quoted: string;
}

/**
 * Content the requester quoted or pasted: fenced blocks, lines quoted with `>`, text in quotation marks
 * (at least a few words), and whatever follows a line that introduces pasted content ("Summarize this email:").
 */
const QUOTED: readonly RegExp[] = [
  /```[\s\S]*?(?:```|$)/g,
  /(?:^|\n)[ \t]*>[^\n]*/g,
  /"[^"\n]{12,}"|“[^”]{12,}”|«[^»]{12,}»|„[^“”]{12,}[“”]|'[^'\n]{12,}'(?![a-z])/g,
  /\b(?:this|the following|below|pasted|forwarded|attached)\b[^\n:]{0,40}:\s*\n[\s\S]*$/gi,
  /\b(?:this|the following|the)\s+(?:email|e-mail|message|document|text|note|ticket|review|comment|transcript|page|letter|chat)\b[^\n:]{0,30}:\s+[\s\S]*$/gi,
];

/** The request as the requester's own words and the content they quoted in it. */
export function splitInstruction(request: string): Instruction {
  let own = request;
  const quoted: string[] = [];
  for (const pattern of QUOTED) {
    own = own.replace(pattern, (hit) => {
      quoted.push(hit);
      return " ";
    });
  }
  return { own, quoted: quoted.join("\n") };
}

const normal = (value: string, kind: TargetKind) => {
  const v = value.trim().toLowerCase();
  if (kind === "channel") return v.replace(/^#/, "");
  if (kind === "url") return v.replace(/^https?:\/\//, "").replace(/\/+$/, "");
  return v;
};

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether `text` names the target: the address, the channel's name as a word, the URL without its scheme. */
export function mentions(text: string, value: string, kind: TargetKind): boolean {
  const v = normal(value, kind);
  if (!v) return false;
  const haystack = text.toLowerCase();
  if (kind === "url") return haystack.includes(v);
  return new RegExp(`(?<![\\w.@+-])#?${escape(v)}(?![\\w@-]|\\.\\w)`, "u").test(haystack);
}

/** Text the model saw that may have put the target there, named for the reader (`the output of read_document`). */
export interface Source {
  name: string;
  text: string;
}

/** Where a target that is not in the requester's own words came from; undefined when it is theirs. */
export function provenanceOf(
  value: string,
  kind: TargetKind,
  instruction: Instruction,
  sources: readonly Source[],
): string | undefined {
  if (mentions(instruction.own, value, kind)) return undefined;
  if (mentions(instruction.quoted, value, kind)) return "content quoted or pasted into the request";
  const source = sources.find((s) => mentions(s.text, value, kind));
  return source ? source.name : "the model (it is in no instruction, document or tool output)";
}
