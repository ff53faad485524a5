import { createHash, timingSafeEqual } from 'node:crypto';

export type Credential = { kind: 'api-key'; value: string } | { kind: 'jwt'; value: string };

/** A JWS in compact form: three base64url segments (the signature may be empty, as with alg none). */
const JWT_FORM = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** Visible ASCII, no spaces: anything else cannot be a key or a token. */
const CREDENTIAL_CHARS = /^[\x21-\x7e]+$/;
export const MAX_CREDENTIAL_LENGTH = 8_192;

/** Why a credential header was rejected (answered 401 by the guard). */
export class MalformedCredentialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedCredentialError';
  }
}

/**
 * Reads the caller's credential from `X-API-Key` or `Authorization: Bearer`. A bearer value
 * shaped like a JWT (three base64url segments) is a token; anything else is an API key (so the
 * OpenAI SDK's `Authorization: Bearer <key>` works).
 * Returns undefined when no credential is present; throws MalformedCredentialError on a
 * malformed header or when both headers are sent (which one counts would be a guess).
 */
export function extractCredential(
  headers: Record<string, string | string[] | undefined>,
): Credential | undefined {
  const apiKey = single(headers['x-api-key'], 'X-API-Key');
  const auth = single(headers.authorization, 'Authorization');
  if (apiKey !== undefined && auth !== undefined) {
    throw new MalformedCredentialError('send one credential: X-API-Key or Authorization, not both');
  }
  if (apiKey !== undefined) return { kind: 'api-key', value: checked(apiKey.trim()) };
  if (auth === undefined) return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(auth.trim());
  if (!m?.[1]) throw new MalformedCredentialError('Authorization header must be "Bearer <token>"');
  const value = checked(m[1]);
  return JWT_FORM.test(value) ? { kind: 'jwt', value } : { kind: 'api-key', value };
}

function single(v: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(v)) {
    if (v.length > 1) throw new MalformedCredentialError(`${name} header given more than once`);
    v = v[0];
  }
  return v === undefined || v.trim() === '' ? undefined : v;
}

function checked(v: string): string {
  if (v.length === 0 || v.length > MAX_CREDENTIAL_LENGTH) {
    throw new MalformedCredentialError('credential is empty or too long');
  }
  if (!CREDENTIAL_CHARS.test(v))
    throw new MalformedCredentialError('credential contains invalid characters');
  return v;
}

/** Constant-time equality of two secrets (hashes first, so lengths do not leak). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
