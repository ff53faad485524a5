import { createHash } from 'node:crypto';
import { encode } from 'gpt-tokenizer/model/gpt-4o';

/**
 * Candidate words of the simulated model. Only those that are one o200k token in every form
 * the generator uses (`word`, ` word`, `Word`, ` Word`) are kept, so a text of N planned tokens
 * really is N tokens.
 */
const CANDIDATES = `
  the of and to in is that for it as with was on be by at this from have or an are not but all can
  had her one our out day get has his how man new now old see two way who did its let put say she
  too use river stone light north garden signal orbit paper window market silver winter engine bridge
  forest cloud letter circle pocket mirror planet thunder copper harbor island summer morning evening
  quiet bright simple common early final future model system answer question moment reason record
  number pattern report result sample series table value world water fire earth metal glass green
  blue yellow black white small large quick slow careful gentle steady clear open close near far
  above below between around across after before during since until while because although however
  therefore perhaps often always never usually rarely every each many most some few several other
  another same different important possible likely certain useful ready strong short long
  `
  .split(/\s+/)
  .filter((w) => w !== '');

const capitalise = (w: string) => w.charAt(0).toUpperCase() + w.slice(1);
const oneToken = (s: string) => encode(s).length === 1;

export const VOCABULARY: readonly string[] = CANDIDATES.filter(
  (w) =>
    oneToken(w) && oneToken(` ${w}`) && oneToken(capitalise(w)) && oneToken(` ${capitalise(w)}`),
);

const MIN_SENTENCE_WORDS = 4;
const MAX_SENTENCE_WORDS = 14;

/**
 * Deterministic prose of exactly `tokens` o200k tokens: pseudo-random words from a fixed
 * vocabulary, sentence-cased sentences ending with a period (the last one too, when `tokens` >= 2).
 * The same `seed` always gives the same text.
 */
export function simulatedText(seed: string, tokens: number): string {
  const rng = new HashStream(seed);
  const out: string[] = [];
  let remaining = tokens;
  if (remaining === 1) return capitalise(pick(rng));
  while (remaining >= 2) {
    const planned = MIN_SENTENCE_WORDS + rng.below(MAX_SENTENCE_WORDS - MIN_SENTENCE_WORDS + 1);
    // each sentence costs its words plus the period; never leave a single token over
    const words = remaining - (planned + 1) < 2 ? remaining - 1 : planned;
    const sentence = [capitalise(pick(rng))];
    for (let i = 1; i < words; i++) sentence.push(pick(rng));
    out.push(`${sentence.join(' ')}.`);
    remaining -= words + 1;
  }
  return out.join(' ');
}

const pick = (rng: HashStream) => VOCABULARY[rng.below(VOCABULARY.length)] as string;

/** Uniform integers from SHA-256 in counter mode: deterministic, portable, no state but a counter. */
class HashStream {
  private block = Buffer.alloc(0);
  private offset = 0;
  private counter = 0;

  constructor(private readonly seed: string) {}

  /** An integer in [0, n). */
  below(n: number): number {
    if (this.offset + 4 > this.block.length) {
      this.block = createHash('sha256').update(`${this.seed}:${this.counter++}`).digest();
      this.offset = 0;
    }
    const value = this.block.readUInt32BE(this.offset);
    this.offset += 4;
    return value % n;
  }
}
