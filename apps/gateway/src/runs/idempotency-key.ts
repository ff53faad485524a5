import { invalid } from '../common/validation';

const MAX_LENGTH = 255;
/** Printable ASCII; no leading or trailing space (HTTP strips them anyway). */
const PRINTABLE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** The `Idempotency-Key` header, validated; undefined when absent. */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header))
    throw invalid('Idempotency-Key given more than once', [
      { path: 'Idempotency-Key', message: 'give one key' },
    ]);
  if (header.length === 0 || header.length > MAX_LENGTH || !PRINTABLE.test(header)) {
    throw invalid('Idempotency-Key is invalid', [
      { path: 'Idempotency-Key', message: `must be 1-${MAX_LENGTH} printable ASCII characters` },
    ]);
  }
  return header;
}
