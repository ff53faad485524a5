import { createHmac, generateKeyPairSync } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { OidcVerifier } from '../../src/oidc/oidc-verifier';
import { startTestOidcProvider, type TestOidcProvider } from '../support/test-oidc-provider';

jest.setTimeout(30_000);

const AUDIENCE = 'https://api.aob.test';
const OTHER_AUDIENCE = 'https://other.aob.test';

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const parts = (token: string) => {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>,
    signature: s!,
  };
};

describe('OidcVerifier against a real OpenID provider', () => {
  let idp: TestOidcProvider;
  let verifier: OidcVerifier;
  const now = () => Math.floor(Date.now() / 1000);
  /** Claims a valid access token of tenant-a's admin client would carry. */
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: idp.issuer,
    aud: AUDIENCE,
    sub: 'crafted-client',
    client_id: 'crafted-client',
    iat: now(),
    exp: now() + 300,
    jti: `jti-${Math.random()}`,
    tenant_id: 'tenant-a',
    roles: ['admin'],
    ...extra,
  });

  beforeAll(async () => {
    Logger.overrideLogger(false);
    idp = await startTestOidcProvider({
      audience: AUDIENCE,
      otherAudiences: [OTHER_AUDIENCE],
      clients: [
        { clientId: 'admin-a', tenantId: 'tenant-a', roles: ['admin'] },
        { clientId: 'viewer-b', tenantId: 'tenant-b', roles: 'viewer' },
        {
          clientId: 'several-roles',
          tenantId: 'tenant-a',
          roles: ['viewer', 'executor', 'superuser'],
        },
        { clientId: 'unknown-roles', tenantId: 'tenant-a', roles: ['superuser', 'root'] },
        { clientId: 'no-tenant', roles: ['admin'] },
        { clientId: 'bad-tenant', tenantId: 'tenant a;drop', roles: ['admin'] },
      ],
    });
    verifier = new OidcVerifier({ issuerUrl: idp.issuer, audience: AUDIENCE, jwksCooldownMs: 0 });
  });

  afterAll(async () => {
    await idp?.close();
  });

  it('accepts a provider access token (typ at+jwt) and reads tenant, roles and subject from its claims', async () => {
    const token = await idp.token('admin-a');
    expect(parts(token).header.typ).toBe('at+jwt');
    const p = await verifier.verify(token);
    expect(p).toMatchObject({
      subject: 'admin-a',
      tenantId: 'tenant-a',
      role: 'admin',
      kind: 'jwt',
      platformAdmin: false,
    });
    expect(p.permissions.has('keys:manage')).toBe(true);
    expect(p.scopes).toBeUndefined();
  });

  it('reads roles given as a space-separated string', async () => {
    const p = await verifier.verify(await idp.token('viewer-b'));
    expect(p).toMatchObject({ tenantId: 'tenant-b', role: 'viewer' });
    expect([...p.permissions].sort()).toEqual(['agents:read', 'runs:read', 'usage:read']);
  });

  it('unites several roles and ignores unknown ones', async () => {
    const p = await verifier.verify(await idp.token('several-roles'));
    expect(p.role).toBe('executor');
    expect(p.permissions.has('usage:read')).toBe(true);
    expect(p.permissions.has('runs:create')).toBe(true);
    expect(p.permissions.has('keys:manage')).toBe(false);
  });

  it('narrows the role by the token scopes (role grants ∩ scopes)', async () => {
    const token = await idp.token('admin-a', { scope: 'runs:read agents:read' });
    expect(parts(token).payload.scope).toBe('runs:read agents:read');
    const p = await verifier.verify(token);
    expect([...p.permissions].sort()).toEqual(['agents:read', 'runs:read']);
    expect(p.permissions.has('runs:create')).toBe(false);
  });

  it('reads scopes from scp (array) too', async () => {
    const p = await verifier.verify(await idp.sign(claims({ scp: ['runs:create', 'openid'] })));
    expect([...p.permissions]).toEqual(['runs:create']);
  });

  it('403s a token without a known role, without a tenant, or with an invalid tenant', async () => {
    await expect(verifier.verify(await idp.token('unknown-roles'))).rejects.toMatchObject({
      code: 'Forbidden',
      message: expect.stringContaining('no AOB role'),
    });
    await expect(verifier.verify(await idp.token('no-tenant'))).rejects.toMatchObject({
      code: 'Forbidden',
      message: expect.stringContaining('no valid tenant'),
    });
    await expect(verifier.verify(await idp.token('bad-tenant'))).rejects.toMatchObject({
      code: 'Forbidden',
    });
  });

  it('401s a token issued for another audience', async () => {
    const token = await idp.token('admin-a', { resource: OTHER_AUDIENCE });
    expect(parts(token).payload.aud).toBe(OTHER_AUDIENCE);
    await expect(verifier.verify(token)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('"aud"'),
    });
  });

  it('401s another issuer', async () => {
    await expect(
      verifier.verify(await idp.sign(claims({ iss: 'https://evil.example' }))),
    ).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('"iss"'),
    });
  });

  it('401s an expired token, but allows a small clock skew', async () => {
    await expect(
      verifier.verify(await idp.sign(claims({ iat: now() - 600, exp: now() - 120 }))),
    ).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'token expired',
    });
    await expect(
      verifier.verify(await idp.sign(claims({ exp: now() - 10 }))),
    ).resolves.toMatchObject({ tenantId: 'tenant-a' });
  });

  it('401s a token not valid yet (nbf) and one without exp', async () => {
    await expect(
      verifier.verify(await idp.sign(claims({ nbf: now() + 600 }))),
    ).rejects.toMatchObject({ code: 'Unauthorized' });
    const { exp: _exp, ...noExp } = claims();
    await expect(verifier.verify(await idp.sign(noExp))).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('"exp"'),
    });
  });

  it('401s a token whose claims were tampered with after signing', async () => {
    const token = await idp.token('viewer-b');
    const { header, payload, signature } = parts(token);
    const forged = [
      b64url(header),
      b64url({ ...payload, tenant_id: 'tenant-a', roles: ['admin'] }),
      signature,
    ].join('.');
    await expect(verifier.verify(forged)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'token signature is invalid',
    });
  });

  it('401s alg none', async () => {
    const header = { alg: 'none', typ: 'at+jwt', kid: idp.currentKey().kid };
    const unsigned = `${b64url(header)}.${b64url(claims())}.`;
    await expect(verifier.verify(unsigned)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'token algorithm none is not accepted',
    });
  });

  it('401s HS256 made with the public key as the HMAC secret (algorithm confusion)', async () => {
    const pub = idp.currentKey().privateJwk;
    const publicJwk = JSON.stringify({ kty: pub.kty, n: pub.n, e: pub.e });
    const signingInput = `${b64url({ alg: 'HS256', typ: 'at+jwt', kid: pub.kid })}.${b64url(claims())}`;
    const mac = createHmac('sha256', publicJwk).update(signingInput).digest('base64url');
    await expect(verifier.verify(`${signingInput}.${mac}`)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'token algorithm HS256 is not accepted',
    });
  });

  it('401s a token signed by another key under the provider’s kid', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = await new idp.jose.SignJWT(claims())
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: idp.currentKey().kid })
      .sign(privateKey);
    await expect(verifier.verify(token)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'token signature is invalid',
    });
  });

  it('401s a kid the provider does not publish', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = await new idp.jose.SignJWT(claims())
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-published' })
      .sign(privateKey);
    await expect(verifier.verify(token)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('does not publish'),
    });
  });

  it('accepts typ JWT and no typ, rejects other token types', async () => {
    await expect(verifier.verify(await idp.sign(claims(), { typ: 'JWT' }))).resolves.toMatchObject({
      role: 'admin',
    });
    await expect(
      verifier.verify(await idp.sign(claims(), { typ: undefined })),
    ).resolves.toMatchObject({ role: 'admin' });
    await expect(
      verifier.verify(await idp.sign(claims(), { typ: 'dpop+jwt' })),
    ).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('not an access token'),
    });
  });

  it('401s three segments of garbage', async () => {
    await expect(verifier.verify('abc.def.ghi')).rejects.toMatchObject({ code: 'Unauthorized' });
  });

  it('follows a provider key rotation: a new kid refetches the JWKS', async () => {
    const before = await idp.token('admin-a');
    await verifier.verify(before);
    const oldKid = idp.currentKey().kid;
    const rotated = await idp.rotateKeys();
    expect(rotated.kid).not.toBe(oldKid);
    const after = await idp.token('admin-a');
    expect(parts(after).header.kid).toBe(rotated.kid);
    await expect(verifier.verify(after)).resolves.toMatchObject({ subject: 'admin-a' });
    // tokens signed before the rollover stay valid while the old key is published
    await expect(verifier.verify(before)).resolves.toMatchObject({ subject: 'admin-a' });
  });

  it('answers 503 while the provider is unreachable, then recovers', async () => {
    const token = await idp.token('admin-a');
    const v = new OidcVerifier({
      issuerUrl: idp.issuer,
      audience: AUDIENCE,
      discoveryRetryMs: 0,
      httpTimeoutMs: 1_000,
    });
    idp.setAvailable(false);
    try {
      await expect(v.verify(token)).rejects.toMatchObject({ code: 'Unavailable', retryable: true });
    } finally {
      idp.setAvailable(true);
    }
    await expect(v.verify(token)).resolves.toMatchObject({ subject: 'admin-a' });
  });

  it('answers 503 when the provider cannot be reached at all', async () => {
    const gone = await startTestOidcProvider({ audience: AUDIENCE, clients: [] });
    await gone.close();
    const v = new OidcVerifier({
      issuerUrl: gone.issuer,
      audience: AUDIENCE,
      httpTimeoutMs: 1_000,
    });
    await expect(v.verify(await idp.sign(claims()))).rejects.toMatchObject({ code: 'Unavailable' });
  });
});
