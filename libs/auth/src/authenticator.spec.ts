import { Authenticator } from './authenticator';

describe('Authenticator without OIDC or a database', () => {
  const auth = new Authenticator(
    {
      bootstrapTenant: 'acme',
      bootstrapAdminKey: 'bootstrap-key-0123456789',
      serviceKey: 'service-key-0123456789',
    },
    undefined,
    undefined,
  );
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

  it('401s JWTs when OIDC is not configured', async () => {
    await expect(auth.authenticate({ authorization: `Bearer ${jwt}` })).rejects.toMatchObject({
      code: 'Unauthorized',
      message: expect.stringContaining('OIDC is not configured'),
    });
  });

  it('accepts the bootstrap admin key as X-API-Key or Bearer', async () => {
    for (const headers of [
      { 'x-api-key': 'bootstrap-key-0123456789' },
      { authorization: 'Bearer bootstrap-key-0123456789' },
    ]) {
      await expect(auth.authenticate(headers)).resolves.toMatchObject({
        subject: 'bootstrap-admin',
        tenantId: 'acme',
        role: 'admin',
        kind: 'api-key',
      });
    }
  });

  it('accepts the service key for the tenant it names, never for *', async () => {
    await expect(
      auth.authenticate({
        authorization: 'Bearer service-key-0123456789',
        'x-aob-tenant-id': 'acme',
      }),
    ).resolves.toMatchObject({
      subject: 'service',
      role: 'executor',
      kind: 'service',
      tenantId: 'acme',
    });
    for (const tenant of [undefined, '*', 'a b']) {
      await expect(
        auth.authenticate({ 'x-api-key': 'service-key-0123456789', 'x-aob-tenant-id': tenant }),
      ).rejects.toMatchObject({ code: 'Unauthorized' });
    }
  });

  it('401s stored-key shaped values when no key store is installed, and anything unknown', async () => {
    await expect(
      auth.authenticate({ 'x-api-key': `aob_01234567_${'a'.repeat(43)}` }),
    ).rejects.toMatchObject({
      code: 'Unauthorized',
    });
    await expect(auth.authenticate({})).rejects.toMatchObject({ code: 'Unauthorized' });
    await expect(auth.authenticate({ authorization: 'Basic abc' })).rejects.toMatchObject({
      code: 'Unauthorized',
    });
  });
});
