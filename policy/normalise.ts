import { remove as foldConfusables } from "confusables";

/**
 * The forms of a text that the injection patterns read, so that an instruction cannot hide behind how it is
 * written: look-alike letters from other scripts or styled alphabets, letters spaced or dotted apart, digits and
 * symbols standing in for letters. Each form is only produced when it differs from the plain text.
 */
export type Obfuscation = "homoglyphs" | "spaced_letters" | "leetspeak";

export interface Form {
  text: string;
  /** How the text was disguised, when this form undoes a disguise (none for the plain text). */
  undoes?: Obfuscation;
}

/**
 * Look-alikes that the confusables table maps to a letter the patterns would not expect (Cyrillic `І` to `l`),
 * or leaves alone: the common Cyrillic and Greek stand-ins for Latin letters.
 */
const LOOKALIKES: Readonly<Record<string, string>> = {
  А: "A",
  В: "B",
  Е: "E",
  К: "K",
  М: "M",
  Н: "H",
  О: "O",
  Р: "P",
  С: "C",
  Т: "T",
  Х: "X",
  У: "Y",
  І: "I",
  Ј: "J",
  Ѕ: "S",
  а: "a",
  е: "e",
  о: "o",
  р: "p",
  с: "c",
  у: "y",
  х: "x",
  і: "i",
  ј: "j",
  ѕ: "s",
  ԁ: "d",
  һ: "h",
  ԛ: "q",
  ԝ: "w",
  Α: "A",
  Β: "B",
  Ε: "E",
  Ζ: "Z",
  Η: "H",
  Ι: "I",
  Κ: "K",
  Μ: "M",
  Ν: "N",
  Ο: "O",
  Ρ: "P",
  Τ: "T",
  Υ: "Y",
  Χ: "X",
  ο: "o",
  ι: "i",
  α: "a",
  ν: "v",
  ρ: "p",
  κ: "k",
  τ: "t",
  υ: "u",
  ɡ: "g",
  ı: "i",
};
const LOOKALIKE = new RegExp(`[${Object.keys(LOOKALIKES).join("")}]`, "gu");
const MARKS = /\p{M}+/gu;
/** A Latin letter next to a letter of another script inside one word: the sign of a homoglyph disguise. */
const MIXED_SCRIPT =
  /(?:\p{Script=Latin}[\p{Script=Cyrillic}\p{Script=Greek}]|[\p{Script=Cyrillic}\p{Script=Greek}]\p{Script=Latin})/u;

/** Latin letters for look-alikes, styled alphabets (math bold, circled, fullwidth) and accents. */
function fold(text: string): string {
  const nfkc = text.normalize("NFKC");
  const swapped = MIXED_SCRIPT.test(nfkc) ? nfkc.replace(LOOKALIKE, (c) => LOOKALIKES[c] ?? c) : nfkc;
  // The confusables table would also rewrite words wholly in another script; those are read as they are.
  const latin = swapped.replace(/[\p{L}\p{N}\p{S}]+/gu, (word) =>
    /\p{Script=Cyrillic}|\p{Script=Greek}|\p{Script=Han}|\p{Script=Arabic}|\p{Script=Hangul}|\p{Script=Hiragana}|\p{Script=Katakana}|\p{Script=Devanagari}/u.test(
      word,
    )
      ? word
      : foldConfusables(word),
  );
  return latin.normalize("NFD").replace(MARKS, "").normalize("NFC");
}

/** Three or more single letters kept apart by one separator ("i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e"). */
const SPACED = /(?<![\p{L}\p{N}])(?:\p{L}[ .\-_*/|]){2,}\p{L}(?![\p{L}\p{N}])/gu;

/** Joins spaced-out letters; a wider gap (two separators) between runs stays a word break. */
function despace(text: string): string {
  return text
    .replace(/(?<=\p{L}) {2,}(?=\p{L})/gu, " \uE000 ")
    .replace(SPACED, (run) => run.replace(/[ .\-_*/|]/g, ""))
    .replace(/ ?\uE000 ?/g, " ");
}

const LEET: Readonly<Record<string, string>> = {
  "0": "o",
  "1": "i",
  "3": "e",
  "4": "a",
  "5": "s",
  "7": "t",
  "8": "b",
  "9": "g",
  "@": "a",
  $: "s",
  "!": "i",
  "|": "l",
  "+": "t",
};
/** A token of letters with digits or symbols among them: "1gn0r3", "pr3v!0us", "ru|es". Not numbers or e-mails. */
const LEET_TOKEN = /(?<![\w@.])(?=[\w@$!|+]*\p{L})(?=[\w@$!|+]*[0-9@$!|+])[\w@$!|+]{3,}(?![\w@]|\.\w)/gu;

function unleet(text: string, one: "i" | "l"): string {
  return text.replace(LEET_TOKEN, (token) =>
    [...token].map((c) => (c === "1" ? one : (LEET[c] ?? c))).join(""),
  );
}

/** The plain text, then each form that undoes a disguise and reads differently. */
export function formsOf(text: string): Form[] {
  const plain = text.normalize("NFKC");
  const forms: Form[] = [{ text: plain }];
  const seen = new Set([plain]);
  const add = (form: Form) => {
    if (seen.has(form.text)) return;
    seen.add(form.text);
    forms.push(form);
  };
  const folded = fold(text);
  add({ text: folded, undoes: "homoglyphs" });
  const joined = despace(folded);
  add({ text: joined, undoes: "spaced_letters" });
  for (const one of ["i", "l"] as const) add({ text: despace(unleet(folded, one)), undoes: "leetspeak" });
  return forms;
}

/** The letters alone, lower case: what spaced and mixed disguises leave of a phrase ("ignorepreviousinstructions"). */
export function compact(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}]+/gu, "");
}
