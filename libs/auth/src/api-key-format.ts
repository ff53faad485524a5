import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/**
 * Stored API keys look like `aob_<prefix>_<secret>`: `prefix` is the first 8 hex digits of the
 * key's id (shown in listings, so a leaked key can be told apart and revoked), `secret` is 32
 * random bytes in base64url (256 bits: a plain SHA-256 of the key is a safe hash, no slow KDF
 * needed). No `.` inside, so a key never looks like a JWT.
 */
const STORED_KEY = /^aob_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKeyMaterial {
  id: string;
  prefix: string;
  /** The key itself: returned to the caller once, never stored. */
  key: string;
  /** SHA-256 of `key`: what is stored. */
  hash: Buffer;
}

export function generateApiKey(): NewApiKeyMaterial {
  const id = randomUUID();
  const prefix = id.slice(0, 8);
  const key = `aob_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { id, prefix, key, hash: hashApiKey(key) };
}

/** The prefix of a stored key, or undefined when `value` does not have the stored-key form. */
export function storedKeyPrefix(value: string): string | undefined {
  return STORED_KEY.exec(value)?.[1];
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Constant-time comparison of two SHA-256 digests. */
export function hashEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
