import fc from 'fast-check';
import { generateApiKey, storedKeyPrefix } from './api-key-format';
import {
  extractCredential,
  MalformedCredentialError,
  MAX_CREDENTIAL_LENGTH,
  secretEquals,
} from './credentials';

describe('extractCredential', () => {
  const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

  it('reads X-API-Key', () => {
    expect(extractCredential({ 'x-api-key': 'k-123' })).toEqual({
      kind: 'api-key',
      value: 'k-123',
    });
  });

  it('tells a JWT from an API key in Authorization: Bearer by its form', () => {
    expect(extractCredential({ authorization: `Bearer ${JWT}` })).toEqual({
      kind: 'jwt',
      value: JWT,
    });
    const { key } = generateApiKey();
    expect(extractCredential({ authorization: `Bearer ${key}` })).toEqual({
      kind: 'api-key',
      value: key,
    });
    expect(extractCredential({ authorization: `bearer   ${key}` })).toEqual({
      kind: 'api-key',
      value: key,
    });
    // alg none: an empty signature is still the JWT form (and is then refused by the verifier)
    expect(extractCredential({ authorization: 'Bearer a.b.' })).toEqual({
      kind: 'jwt',
      value: 'a.b.',
    });
  });

  it('returns undefined without credentials', () => {
    expect(extractCredential({})).toBeUndefined();
    expect(extractCredential({ 'x-api-key': '', authorization: '   ' })).toBeUndefined();
  });

  it.each([
    ['Basic dXNlcjpwYXNz'],
    ['Bearer'],
    ['Bearer '],
    ['Bearer a b'],
    ['Token abc'],
    [`Bearer ${'x'.repeat(MAX_CREDENTIAL_LENGTH + 1)}`],
    ['Bearer abc\u0000'],
    ['Bearer ключ'],
  ])('refuses Authorization %j', (value) => {
    expect(() => extractCredential({ authorization: value })).toThrow(MalformedCredentialError);
  });

  it('refuses two credentials at once, repeated headers, and keys with spaces or control characters', () => {
    expect(() => extractCredential({ 'x-api-key': 'a', authorization: `Bearer ${JWT}` })).toThrow(
      /not both/,
    );
    expect(() => extractCredential({ 'x-api-key': ['a', 'b'] })).toThrow(/more than once/);
    expect(() => extractCredential({ 'x-api-key': 'a, b' })).toThrow(/invalid characters/);
    expect(() => extractCredential({ 'x-api-key': 'a\tb' })).toThrow(/invalid characters/);
  });

  // Property-based: whatever arrives in the two headers, the parser either returns a clean
  // credential or throws MalformedCredentialError; it never throws anything else, never returns
  // a value with whitespace or over the cap, and classifies by form alone.
  const headerValue = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.constantFrom('Bearer ', 'bearer ', 'BEARER  ', 'Basic ', '').chain((scheme) =>
      fc.oneof(
        fc.string({ maxLength: 100 }).map((v) => scheme + v),
        fc
          .tuple(fc.base64String(), fc.base64String(), fc.base64String())
          .map(
            (p) => scheme + p.join('.').replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, ''),
          ),
      ),
    ),
    fc.constant('x'.repeat(MAX_CREDENTIAL_LENGTH + 1)),
  );
  const headersArb = fc.record(
    {
      'x-api-key': fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 })),
      authorization: fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 })),
    },
    { requiredKeys: [] },
  );

  it('never fails other than with MalformedCredentialError, and returns only clean values (property)', () => {
    fc.assert(
      fc.property(headersArb, (headers) => {
        let cred;
        try {
          cred = extractCredential(headers);
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedCredentialError);
          return;
        }
        if (cred === undefined) return;
        expect(cred.value.length).toBeGreaterThan(0);
        expect(cred.value.length).toBeLessThanOrEqual(MAX_CREDENTIAL_LENGTH);
        expect(cred.value).toMatch(/^[\x21-\x7e]+$/);
        if (cred.kind === 'jwt') expect(cred.value.split('.')).toHaveLength(3);
      }),
      { numRuns: 2_000 },
    );
  });

  it('always reads a stored key as an API key, whichever header carries it (property)', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom('Bearer ', 'bearer ', 'Bearer   '),
        (asHeader, scheme) => {
          const { key } = generateApiKey();
          const cred = extractCredential(
            asHeader ? { 'x-api-key': key } : { authorization: scheme + key },
          );
          expect(cred).toEqual({ kind: 'api-key', value: key });
          expect(storedKeyPrefix(cred!.value)).toBe(key.slice(4, 12));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('secretEquals', () => {
  it('compares secrets of any length', () => {
    expect(secretEquals('abc', 'abc')).toBe(true);
    expect(secretEquals('abc', 'abd')).toBe(false);
    expect(secretEquals('abc', 'abcd')).toBe(false);
  });
});
