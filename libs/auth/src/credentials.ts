import { createHash, timingSafeEqual } from 'node:crypto';

export type Credential = { kind: 'api-key'; value: string } | { kind: 'jwt'; value: string };

const JWT_FORM = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_CREDENTIAL_LENGTH = 8_192;

/**
 * Reads the caller's credential from `X-API-Key` or `Authorization: Bearer`. A bearer value
 * shaped like a JWT (three base64url segments) is a token; anything else is an API key.
 * Returns undefined when no credential is present; throws on a malformed header.
 */
export function extractCredential(headers: Record<string, string | string[] | undefined>): Credential | undefined {
  const apiKey = single(headers['x-api-key']);
  if (apiKey !== undefined) return { kind: 'api-key', value: checked(apiKey.trim()) };
  const auth = single(headers.authorization);
  if (auth === undefined) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
  if (!m?.[1]) throw new Error('Authorization header must be "Bearer <token>"');
  const value = checked(m[1]);
  return JWT_FORM.test(value) ? { kind: 'jwt', value } : { kind: 'api-key', value };
}

function single(v: string | string[] | undefined): string | undefined {
  if (Array.isArray(v)) throw new Error('credential header given more than once');
  return v === undefined || v === '' ? undefined : v;
}

function checked(v: string): string {
  if (v.length === 0 || v.length > MAX_CREDENTIAL_LENGTH) throw new Error('credential is empty or too long');
  return v;
}

/** Constant-time equality of two secrets (hashes first, so lengths do not leak). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
