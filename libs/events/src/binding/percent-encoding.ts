/**
 * Header value encoding of the CloudEvents NATS protocol binding (spec main, section 3.1.3.2):
 * space, double-quote, percent and everything outside printable ASCII become UTF-8 `%XX`.
 */

const UTF8 = new TextEncoder();
// fatal: the binding says byte sequences that are invalid UTF-8 (overlong forms included) MUST be rejected.
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function mustEncode(codePoint: number): boolean {
  return codePoint < 0x21 || codePoint > 0x7e || codePoint === 0x22 || codePoint === 0x25;
}

/** Percent-encodes one attribute value for a NATS header (upper-case hex, as the binding recommends). */
export function percentEncodeHeaderValue(value: string): string {
  let out = '';
  for (const ch of value) {
    // `for...of` walks code points, so a surrogate pair is encoded as the one character it is.
    if (!mustEncode(ch.codePointAt(0) ?? 0)) {
      out += ch;
      continue;
    }
    for (const byte of UTF8.encode(ch))
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Why a header value could not be decoded; the caller adds which header it was. */
export class HeaderValueError extends Error {
  override readonly name = 'HeaderValueError';
}

/**
 * Undoes RFC 7230 quoting (older senders quoted values instead of percent-encoding spaces),
 * then one round of percent-decoding. Throws HeaderValueError on a broken escape or invalid UTF-8.
 */
export function percentDecodeHeaderValue(raw: string): string {
  const value = unquote(raw);
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25) {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new HeaderValueError(`invalid percent-escape "%${hex}" at offset ${i}`);
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Lenient: a raw non-ASCII character (not allowed on the wire, but harmless) keeps its UTF-8 bytes.
      const cp = value.codePointAt(i) ?? c;
      const ch = String.fromCodePoint(cp);
      bytes.push(...UTF8.encode(ch));
      i += ch.length - 1;
    }
  }
  try {
    return STRICT_UTF8.decode(Uint8Array.from(bytes));
  } catch {
    throw new HeaderValueError('percent-encoded bytes are not valid UTF-8');
  }
}

function unquote(raw: string): string {
  if (raw.length < 2 || !raw.startsWith('"') || !raw.endsWith('"')) return raw;
  let out = '';
  for (let i = 1; i < raw.length - 1; i++) {
    const ch = raw[i] as string;
    if (ch === '\\') {
      if (i + 1 >= raw.length - 1)
        throw new HeaderValueError('quoted value ends in a lone backslash');
      out += raw[++i];
    } else if (ch === '"') {
      throw new HeaderValueError('unescaped double-quote inside a quoted value');
    } else {
      out += ch;
    }
  }
  return out;
}
