import { compact, formsOf, type Obfuscation } from "./normalise.js";

/**
 * LLM-free prompt-injection detection by attack class. It runs over requests before the orchestrator sees them
 * and over tool outputs before they re-enter a model. The classes follow public taxonomies (OWASP LLM01 and the
 * Agentic Top 10, garak's probe families, BIPIA's indirect injections); the patterns of each class cover several
 * languages, and they read the text after its disguises are undone (`normalise.ts`). Detection is one layer:
 * the provenance rule (`provenance.ts`) holds even for an instruction nothing here recognises.
 */
export type InjectionReason =
  | "instruction_override"
  | "role_play"
  | "system_prompt_extraction"
  | "authority_claim"
  | "approval_bypass"
  | "role_markup"
  | "tool_call_smuggling"
  | "data_exfiltration"
  | "encoded_payload"
  | "hidden_text";

export interface Finding {
  reason: InjectionReason;
  /** The text that matched, in the form it matched in (for encoded payloads, the encoded run). */
  match: string;
  index: number;
  /** The disguise undone before it matched, when there was one. */
  obfuscation?: Obfuscation;
}

const TOOLS =
  "send_message|run_sql|run_javascript|draft_message|read_document|search_kb|list_tables|describe_table|notify_webhook";

/** Patterns per class. Each is tried on every form of the text; the first hit of a class is reported. */
const PATTERNS: readonly [InjectionReason, RegExp][] = [
  // Instruction override (OWASP LLM01 direct injection; garak promptinject), in several languages.
  [
    "instruction_override",
    /\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|preceding|all|any|your|these|those|original|system)\b[^.\n]{0,30}?\b(?:instructions?|rules|guidelines|directives|prompts?|constraints|guardrails|safety (?:rules|policy|settings))\b/i,
  ],
  [
    "instruction_override",
    /\b(?:ignore|disregard|forget|override|bypass)\b (?:the|your) (?:polic(?:y|ies)|rules) (?:and|then|,)/i,
  ],
  [
    "instruction_override",
    /\b(?:ignore|disregard|forget)\b (?:the|all|any) (?:instructions|guidelines|rules|directives|prompts?) (?:above|before|so far|you were given)\b/i,
  ],
  ["instruction_override", /\b(?:new|updated|revised|real) (?:instructions|rules|directives|task)\s*:/i],
  [
    "instruction_override",
    /\b(?:from now on|henceforth|for the rest of this (?:chat|conversation))\b[^.\n]{0,40}\b(?:you (?:will|must|are|shall)|respond|answer|obey|always|never)\b/i,
  ],
  ["instruction_override", /\bdo not (?:follow|obey) (?:your|the|any) (?:rules|instructions|policy)\b/i],
  [
    "instruction_override",
    /\b(?:your|the) (?:instructions|rules) (?:have|has) (?:changed|been (?:updated|replaced|revoked))\b/i,
  ],
  // Spanish, Portuguese, Italian, French, German, Dutch, Polish, Turkish, Swedish.
  [
    "instruction_override",
    /\b(?:ignora|ignore|ignorar|olvida|olvide|olvidar|esquece|esqueça|esqueca|dimentica|oublie|oubliez|ignorez)\b[^.\n]{0,30}?\b(?:instrucciones|instruções|instrucoes|istruzioni|instructions|reglas|regras|regole|règles|regles|consignes)\b/i,
  ],
  [
    "instruction_override",
    /\b(?:ignoriere|ignorier|ignorieren sie|vergiss|vergessen sie|missachte)\b[^.\n]{0,30}?\b(?:anweisungen|anordnungen|regeln|vorgaben|instruktionen)\b/i,
  ],
  ["instruction_override", /\b(?:negeer|vergeet)\b[^.\n]{0,30}?\b(?:instructies|regels|aanwijzingen)\b/i],
  [
    "instruction_override",
    /\b(?:zignoruj|zapomnij|ignoruj)\b[^.\n]{0,30}?\b(?:instrukcje|polecenia|zasady)\b/i,
  ],
  [
    "instruction_override",
    /(?:talimatları|talimatlari|kuralları)[^.\n]{0,30}?(?:yok say|unut|görmezden gel)/iu,
  ],
  ["instruction_override", /\b(?:ignorera|glöm)[^.\n]{0,30}?\b(?:instruktioner|regler)\b/iu],
  // Russian, Ukrainian, Chinese, Japanese, Korean, Arabic, Hindi.
  [
    "instruction_override",
    /(?:игнорируй|игнорируйте|забудь|забудьте|проигнорируй|ігноруй)[^.\n]{0,30}?(?:инструкци|указани|правила|інструкці)/iu,
  ],
  [
    "instruction_override",
    /(?:忽略|无视|無視|忘记|忘記|不要理会)[^。\n]{0,12}(?:指令|指示|说明|說明|规则|規則|提示)/,
  ],
  ["instruction_override", /(?:指示|命令|ルール)[^。\n]{0,6}(?:を)?(?:無視|忘れ)/],
  ["instruction_override", /(?:지시|명령|규칙)[^.\n]{0,8}(?:무시|잊어)/],
  ["instruction_override", /(?:تجاهل|انس)[^.\n]{0,30}(?:التعليمات|الأوامر|القواعد)/],
  ["instruction_override", /(?:निर्देशों|नियमों)[^।\n]{0,20}(?:अनदेखा|भूल)/],

  // Role play and jailbreak personas (garak dan).
  [
    "role_play",
    /\b(?:you are now|you're now|pretend (?:to be|you are)|act as (?:if you (?:were|are) )?(?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|dan\b|developer|admin|root|system))/i,
  ],
  ["role_play", /\b(?:DAN mode|jailbreak|do anything now|STAN\b)\b/i],
  [
    "role_play",
    /\b(?:enable|enter|activate|switch to|turn on|now in|you are in)\s+(?:DAN|developer|god|jailbreak|AIM|unrestricted)\s+mode\b/i,
  ],
  [
    "role_play",
    /\broleplay as\b|\bstay in character\b|\bno (?:longer )?bound by (?:any )?(?:rules|policies|guidelines)\b/i,
  ],
  ["role_play", /\b(?:ahora eres|tu es maintenant|du bist jetzt|ora sei|agora você é)/iu],
  ["role_play", /(?:ты теперь|теперь ты|你现在是|从现在起你是|あなたは今から)/iu],

  // System prompt extraction (OWASP LLM07).
  [
    "system_prompt_extraction",
    /\b(?:reveal|print|show|repeat|output|display|leak|dump|tell me|give me|what (?:is|are))\b[^.\n]{0,30}\b(?:your|the) (?:system|hidden|initial|original|secret|developer) (?:prompt|instructions|message|rules)\b/i,
  ],
  [
    "system_prompt_extraction",
    /\b(?:repeat|print|output) (?:everything|all(?: the)? text|the text|the words) (?:above|before)\b/i,
  ],
  ["system_prompt_extraction", /\bwhat (?:were|are) you told before\b/i],
  [
    "system_prompt_extraction",
    /\b(?:revela|muestra|révèle|affiche|zeige|mostra)\b[^.\n]{0,20}\b(?:prompt|instrucciones|instructions|anweisungen|istruzioni)\b[^.\n]{0,20}\b(?:sistema|système|systeme|system)/i,
  ],
  [
    "system_prompt_extraction",
    /(?:系统提示|系統提示|システムプロンプト|системный промпт|системные инструкции)/i,
  ],

  // Claims of authority (OWASP Agentic: identity spoofing; BIPIA).
  [
    "authority_claim",
    /\b(?:i am|i'm|this is|speaking as|message from|on behalf of)\b (?:the |your |an? )?(?:system )?(?:administrator|admin|ceo|cto|owner|developer|creator|security team|it department|openai|anthropic|keel team|root user|superuser)\b[^\n]{0,80}\b(?:authori[sz]e|order|instruct|require|allow|permit|grant|override|command|must|need you to)/i,
  ],
  [
    "authority_claim",
    /\b(?:admin|administrator|root|sudo|system|security) (?:override|privileges? (?:granted|enabled)|authori[sz]ation code|access granted)\b/i,
  ],
  [
    "authority_claim",
    /\b(?:authori[sz]ed|sanctioned) by (?:the )?(?:ceo|cto|administrator|admin|security team|management)\b[^.\n]{0,40}\b(?:so|therefore|you (?:may|can|must))/i,
  ],
  ["authority_claim", /\b(?:soy el administrador|je suis l'administrateur|ich bin der administrator)\b/i],
  ["authority_claim", /(?:я администратор|я админ|我是管理员|我是系统管理员|私は管理者)/iu],
  [
    "authority_claim",
    /\b(?:official|authori[sz]ed|urgent|priority) (?:request|message|instruction|order|directive) from (?:the |your )?(?:ceo|cto|it department|security team|administrator|admin|management|openai|anthropic|system)\b/i,
  ],

  // Approvals claimed in advance or switched off.
  [
    "approval_bypass",
    /\b(?:this|the|these|that|my|our|your)\s+(?:request|action|message|email|e-mail|transfer|call|send|payment|change|operation)s?\s+(?:is|are|was|were|has been|have been)\s+(?:(?:already\s+|pre-?)(?:approved|authori[sz]ed|cleared|signed off)|approved in advance)\b/i,
  ],
  [
    "approval_bypass",
    /\b(?:it|this|that|everything)(?:'s| is| was| has been)\s+(?:pre-?approved|approved in advance|already signed off)\b/i,
  ],
  [
    "approval_bypass",
    /\b(?:pre-?approved|approved in advance|already signed off)\b[^.\n]{0,30}\b(?:just|so|send|proceed|go ahead|do it|now)\b/i,
  ],
  [
    "approval_bypass",
    /\b(?:approvals?|reviews?|human review|confirmation|the policy|guardrails?|safety checks?|the reviewer)\s+(?:is|are|has been|have been|was|were)\s+(?:disabled|turned off|switched off|suspended|waived|not (?:needed|required|necessary))\b/i,
  ],
  [
    "approval_bypass",
    /\b(?:without|no need for|skip(?:ping)?|bypass(?:ing)?|do not ask for|don't ask for|don't wait for|no)\s+(?:any\s+|the\s+|a\s+)?(?:human\s+)?(?:approval|review|confirmation|sign-off|reviewer)s?\b[^.\n]{0,40}\b(?:send|email|post|run|execute|do it|proceed|go ahead|now)\b/i,
  ],
  ["approval_bypass", /\bauto-?approve\b/i],
  [
    "approval_bypass",
    /\b(?:ya (?:está|esta|fue) aprobad[oa]|déjà approuvé|bereits genehmigt|già approvato)/iu,
  ],
  ["approval_bypass", /(?:уже одобрено|уже согласовано|已经批准|已批准)/iu],
  [
    "approval_bypass",
    /\b(?:approval|review|sign-off) (?:was|has been|is) (?:already )?(?:given|granted|done)\b/i,
  ],

  // Role markup: chat templates and role headers that try to open a system or assistant turn.
  [
    "role_markup",
    /<\/?(?:system|assistant|im_start|im_end|developer)\b[^>]*>|<\|(?:im_start|im_end|system|assistant|user|endoftext|start_header_id|end_header_id|eot_id)\|>|\[\/?INST\]|<<\/?SYS>>/i,
  ],
  ["role_markup", /"role"\s*:\s*"(?:system|developer|assistant)"/i],
  [
    "role_markup",
    /(?:^|\n)\s*(?:#{1,6}\s*|\*\*)?(?:system|developer)(?: (?:message|prompt|instructions?|override))?\s*(?:\*\*)?\s*:/i,
  ],
  ["role_markup", /(?:^|\n)\s*\[(?:system|developer)(?: (?:message|prompt|override))?\]/i],
  ["role_markup", /\[(?:system|developer)(?: (?:message|prompt|override))?\]/i],
  ["role_markup", /(?:^|\n)\s*role:\s*(?:system|developer)\b/i],

  // Tool calls written into text, for the model to copy.
  ["tool_call_smuggling", /<\/?(?:tool_call|function_call|tool_use|function_calls|invoke)\b[^>]*>/i],
  ["tool_call_smuggling", new RegExp(`"(?:name|tool|function)"\\s*:\\s*"(?:${TOOLS})"`, "i")],
  [
    "tool_call_smuggling",
    new RegExp(
      `\\b(?:call|invoke|use|run|execute)\\b[^.\\n]{0,20}\\b(?:${TOOLS})\\b[^.\\n]{0,40}\\b(?:with|using|args|arguments)\\b`,
      "i",
    ),
  ],
  ["tool_call_smuggling", /\b(?:tool_calls|function_call)\s*[:=]/i],

  // Exfiltration through rendered links and images (garak xss / markdown exfiltration).
  ["data_exfiltration", /!\[[^\]]*\]\(\s*https?:\/\/[^)\s]*[?&][^)\s]*=/i],
  [
    "data_exfiltration",
    /\b(?:send|forward|post|upload|leak|exfiltrate|copy)\b[^.\n]{0,40}\b(?:conversation|chat history|system prompt|api keys?|credentials|secrets|all (?:the )?(?:data|records|documents|emails))\b[^.\n]{0,30}\b(?:to|at)\b[^.\n]{0,10}(?:https?:\/\/|[\w.+-]+@[\w-]+\.)/i,
  ],

  [
    "encoded_payload",
    /\b(?:decode|base64|rot13|hex)\b[^.\n]{0,40}\b(?:and|then)\b[^.\n]{0,20}\b(?:follow|execute|run|obey|do what)\b/i,
  ],
];

/**
 * Key phrases read in the letters-only form of a disguised text, where word breaks are gone
 * ("i g n o r e  a l l" or "ign-ore prev-ious"). Used only on a text that was disguised, so ordinary prose,
 * whose words could run together into these by chance, is not read this way.
 */
const COMPACT: readonly [InjectionReason, RegExp][] = [
  [
    "instruction_override",
    /(?:ignore|disregard|forget|override|bypass)(?:all|any|the|your|my|of|previous|prior|above|earlier|preceding|these|those|system|safety){1,4}(?:instructions?|rules|guidelines|directives|prompts?|constraints|guardrails)/,
  ],
  ["role_play", /(?:developermode|jailbreak|doanythingnow|godmode|youarenowdan|pretendtobeanunrestricted)/],
  [
    "system_prompt_extraction",
    /(?:reveal|print|show|repeat|output)(?:your|the)(?:system|hidden|initial)(?:prompt|instructions)/,
  ],
  [
    "approval_bypass",
    /(?:preapproved|approvalsaredisabled|approvalisnotneeded|noapprovalneeded|skiptheapproval|autoapprove)/,
  ],
];

// Zero-width characters, bidi controls and Unicode tag characters hide text from a reader but not from a model.
const HIDDEN = /[\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]|[\u{E0000}-\u{E007F}]/gu;
const BASE64_RUN = /[A-Za-z0-9+/]{24,}={0,2}/g;
const HEX_RUN = /\b(?:[0-9a-f]{2}){16,}\b/gi;

/** The first hit of each class in one text. */
function scan(text: string, patterns: readonly [InjectionReason, RegExp][]): Finding[] {
  const byReason = new Map<InjectionReason, Finding>();
  for (const [reason, pattern] of patterns) {
    if (byReason.has(reason)) continue;
    const hit = pattern.exec(text);
    if (hit) byReason.set(reason, { reason, match: hit[0], index: hit.index });
  }
  return [...byReason.values()];
}

/** The compact form with `l` read as `i`, as a `1` or `|` may stand for either; COMPACT is written that way. */
const COMPACT_I: readonly [InjectionReason, RegExp][] = COMPACT.map(([reason, re]) => [
  reason,
  new RegExp(re.source.replace(/l/g, "i")),
]);

/** Every class found in any form of the text; a disguised form's findings say which disguise was undone. */
function scanForms(text: string): Finding[] {
  const found = new Map<InjectionReason, Finding>();
  for (const form of formsOf(text)) {
    const hits = scan(form.text, PATTERNS);
    if (form.undoes) hits.push(...scan(compact(form.text).replace(/l/g, "i"), COMPACT_I));
    for (const hit of hits)
      if (!found.has(hit.reason))
        found.set(hit.reason, form.undoes ? { ...hit, obfuscation: form.undoes } : hit);
  }
  return [...found.values()];
}

const printable = (s: string) => s.length > 0 && /^[\x20-\x7E\s]+$/.test(s);

/** Encoded runs that decode to readable text carrying an injection. */
function scanEncoded(text: string): Finding[] {
  const findings: Finding[] = [];
  const runs = [
    ...[...text.matchAll(BASE64_RUN)].map((m) => ({
      m,
      decoded: Buffer.from(m[0], "base64").toString("utf8"),
    })),
    ...[...text.matchAll(HEX_RUN)].map((m) => ({ m, decoded: Buffer.from(m[0], "hex").toString("utf8") })),
  ];
  for (const { m, decoded } of runs) {
    if (printable(decoded) && scanForms(decoded).length > 0)
      findings.push({ reason: "encoded_payload", match: m[0], index: m.index });
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
  const found = [...scanForms(visible), ...scanEncoded(visible), ...hidden.slice(0, 1)];
  const unique = new Map(found.map((f) => [`${f.reason}:${f.match}`, f]));
  return [...unique.values()].sort((a, b) => a.index - b.index);
}

/** How a finding is named to a reader: its class, and the disguise it was written in. */
export function describeFinding(f: Finding): string {
  const name = f.reason.replace(/_/g, " ");
  return f.obfuscation ? `${name}, written with ${f.obfuscation.replace(/_/g, " ")}` : name;
}

/**
 * The text with every finding made inert: hidden characters dropped, matched instructions replaced by a
 * marker naming why, so a model reads that something was removed and cannot follow it. A disguised
 * instruction has no exact span in the text as written, so the whole text is replaced.
 */
export function neutralise(text: string, findings: readonly Finding[]): string {
  let out = text.replace(HIDDEN, "");
  const disguised = findings.find(
    (f) => f.obfuscation || (f.reason !== "hidden_text" && !out.includes(f.match)),
  );
  if (disguised) return `[removed by Keel: ${describeFinding(disguised)}]`;
  for (const f of findings) {
    if (f.reason === "hidden_text") continue;
    out = out.split(f.match).join(`[removed by Keel: ${f.reason.replace(/_/g, " ")}]`);
  }
  return out;
}
