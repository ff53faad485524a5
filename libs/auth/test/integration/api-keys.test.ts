import { Logger } from '@nestjs/common';
import { createDataSource, type DataSource } from '@aob/persistence';
import { createTestDatabase, waitFor, type TestDatabase } from '@aob/testing';
import { ApiKeyVerifier } from '../../src/api-keys/api-key-verifier';
import { ApiKeyRepository } from '../../src/api-keys/api-key.repository';
import { ApiKeyService } from '../../src/api-keys/api-key.service';
import { AuditLog } from '../../src/audit/audit-log';
import { AuditRepository } from '../../src/audit/audit.repository';
import { principalFor } from '../../src/permissions';

jest.setTimeout(30_000);

describe('stored API keys on Postgres', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: ApiKeyRepository;
  let audit: AuditLog;
  let verifier: ApiKeyVerifier;
  let service: ApiKeyService;
  const adminA = principalFor('bootstrap-admin', 'tenant-a', 'admin', 'api-key');
  const adminB = principalFor('admin-b', 'tenant-b', 'admin', 'jwt');
  const platform = principalFor('root', '*', 'admin', 'jwt');

  beforeAll(async () => {
    Logger.overrideLogger(false);
    db = await createTestDatabase('aob_auth');
    ds = createDataSource({ url: db.url, poolSize: 4 });
    await ds.initialize();
    repo = new ApiKeyRepository(ds);
    audit = new AuditLog(new AuditRepository(ds));
    verifier = new ApiKeyVerifier(repo, { cacheTtlMs: 30_000, lastUsedIntervalMs: 60_000 });
    service = new ApiKeyService(repo, verifier, audit);
  });

  afterAll(async () => {
    await audit?.beforeApplicationShutdown();
    await verifier?.beforeApplicationShutdown();
    await ds?.destroy();
    await db?.drop();
  });

  const auditRows = async (action: string) =>
    ds.query<
      {
        actor: string;
        tenant_id: string;
        resource: string;
        decision: string;
        reason: string | null;
      }[]
    >(
      `SELECT actor, actor_kind, tenant_id, action, resource, decision, reason, details FROM auth.audit_log WHERE action = $1 ORDER BY id`,
      [action],
    );

  it('creates a key shown once, stores only its hash, and verifies it', async () => {
    const created = await service.create(adminA, { name: 'ci', role: 'developer' });
    expect(created).toMatchObject({
      name: 'ci',
      role: 'developer',
      tenantId: 'tenant-a',
      createdBy: 'bootstrap-admin',
    });
    expect(created.key).toMatch(new RegExp(`^aob_${created.prefix}_`));
    const [row] = await ds.query<Record<string, unknown>[]>(
      `SELECT * FROM auth.api_keys WHERE id = $1`,
      [created.id],
    );
    expect(JSON.stringify(row)).not.toContain(created.key.slice(13));
    const p = await verifier.verify(created.key);
    expect(p).toMatchObject({
      subject: `api-key:${created.id}`,
      tenantId: 'tenant-a',
      role: 'developer',
      kind: 'api-key',
    });
    expect((await auditRows('api-key.create')).at(-1)).toMatchObject({
      actor: 'bootstrap-admin',
      tenant_id: 'tenant-a',
      resource: `api-key:${created.id}`,
      decision: 'allow',
    });
  });

  it('401s a wrong secret under a real prefix', async () => {
    const created = await service.create(adminA, { name: 'x', role: 'viewer' });
    const forged = created.key.slice(0, 13) + 'A'.repeat(43);
    await expect(verifier.verify(forged)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'invalid credentials',
    });
  });

  it('narrows a key to its scopes', async () => {
    const created = await service.create(adminA, {
      name: 'reader',
      role: 'developer',
      scopes: ['runs:read', 'keys:manage'],
    });
    const p = await verifier.verify(created.key);
    // keys:manage is not a developer permission: the scope cannot add it
    expect([...p.permissions]).toEqual(['runs:read']);
  });

  it('refuses to mint a key more powerful than its creator, and audits the denial', async () => {
    const scoped = principalFor('api-key:x', 'tenant-a', 'admin', 'api-key', {
      scopes: ['keys:manage', 'runs:read'],
    });
    await expect(
      service.create(scoped, { name: 'escalate', role: 'developer' }),
    ).rejects.toMatchObject({
      code: 'Forbidden',
      details: { permission: 'runs:create' },
    });
    await expect(
      service.create(scoped, { name: 'ok', role: 'viewer', scopes: ['runs:read'] }),
    ).resolves.toMatchObject({
      role: 'viewer',
      scopes: ['runs:read'],
    });
    await audit.flush();
    expect(await auditRows('api-key.create')).toContainEqual(
      expect.objectContaining({
        actor: 'api-key:x',
        decision: 'deny',
        reason: expect.stringContaining('runs:create'),
      }),
    );
  });

  it('lets only a platform admin create keys for another tenant', async () => {
    await expect(
      service.create(adminA, { name: 'x', role: 'viewer', tenantId: 'tenant-b' }),
    ).rejects.toMatchObject({
      code: 'Forbidden',
    });
    const forB = await service.create(platform, {
      name: 'for-b',
      role: 'admin',
      tenantId: 'tenant-b',
    });
    expect(await verifier.verify(forB.key)).toMatchObject({
      tenantId: 'tenant-b',
      role: 'admin',
      platformAdmin: false,
    });
  });

  it('refuses an expiry in the past and rejects a key after its expiry', async () => {
    await expect(
      service.create(adminA, {
        name: 'old',
        role: 'viewer',
        expiresAt: new Date(Date.now() - 1000).toISOString(),
      }),
    ).rejects.toMatchObject({ code: 'InvalidRequest' });
    const soon = await service.create(adminA, {
      name: 'short',
      role: 'viewer',
      expiresAt: new Date(Date.now() + 1_500).toISOString(),
    });
    await expect(verifier.verify(soon.key)).resolves.toMatchObject({ role: 'viewer' });
    // cached, but the expiry is checked on every use
    await new Promise((r) => setTimeout(r, 1_600));
    await expect(verifier.verify(soon.key)).rejects.toMatchObject({
      code: 'Unauthorized',
      message: 'API key expired',
    });
  });

  it('lists a tenant’s keys without secrets, newest first, paginated; a platform admin sees all', async () => {
    const b1 = await service.create(adminB, { name: 'b1', role: 'viewer' });
    const b2 = await service.create(adminB, { name: 'b2', role: 'executor' });
    const page1 = await service.list(adminB, { limit: 1 });
    expect(page1.items.map((k) => k.id)).toEqual([b2.id]);
    expect(page1.next).toBeDefined();
    const page2 = await service.list(adminB, { limit: 1, after: page1.next! });
    expect(page2.items.map((k) => k.id)).toEqual([b1.id]);
    // the platform admin's key for tenant-b (an earlier test) is the oldest
    const page3 = await service.list(adminB, { limit: 1, after: page2.next! });
    expect(page3.items.map((k) => k.name)).toEqual(['for-b']);
    expect(page3.next).toBeUndefined();
    expect(JSON.stringify([page1, page2, page3])).not.toContain('aob_');
    const listedA = await service.list(adminA, { limit: 100 });
    expect(listedA.items.every((k) => k.tenantId === 'tenant-a')).toBe(true);
    await expect(service.list(adminA, { limit: 100, tenantId: 'tenant-b' })).rejects.toMatchObject({
      code: 'Forbidden',
    });
    const all = await service.list(platform, { limit: 100 });
    expect(new Set(all.items.map((k) => k.tenantId))).toEqual(new Set(['tenant-a', 'tenant-b']));
    const onlyB = await service.list(platform, { limit: 100, tenantId: 'tenant-b' });
    expect(onlyB.items.every((k) => k.tenantId === 'tenant-b')).toBe(true);
  });

  it('revokes at once on this process, 404s another tenant’s key, and reaches other processes within their TTL', async () => {
    const key = await service.create(adminA, { name: 'to-revoke', role: 'viewer' });
    const other = new ApiKeyVerifier(repo, { cacheTtlMs: 300 });
    await verifier.verify(key.key);
    await other.verify(key.key);
    await expect(service.revoke(adminB, key.id)).rejects.toMatchObject({ code: 'NotFound' });
    await expect(verifier.verify(key.key)).resolves.toBeDefined();
    await service.revoke(adminA, key.id);
    await expect(verifier.verify(key.key)).rejects.toMatchObject({ code: 'Unauthorized' });
    // another process still trusts its cached copy until the TTL runs out
    await expect(other.verify(key.key)).resolves.toBeDefined();
    await new Promise((r) => setTimeout(r, 350));
    await expect(other.verify(key.key)).rejects.toMatchObject({ code: 'Unauthorized' });
    await expect(service.revoke(adminA, key.id)).rejects.toMatchObject({ code: 'NotFound' });
    expect((await service.list(adminA, { limit: 100 })).items.map((k) => k.id)).not.toContain(
      key.id,
    );
    await audit.flush();
    const revokes = await auditRows('api-key.revoke');
    expect(revokes).toContainEqual(
      expect.objectContaining({
        actor: 'admin-b',
        decision: 'deny',
        resource: `api-key:${key.id}`,
      }),
    );
    expect(revokes).toContainEqual(
      expect.objectContaining({ actor: 'bootstrap-admin', decision: 'allow' }),
    );
    await other.beforeApplicationShutdown();
  });

  it('records the last use, throttled', async () => {
    const key = await service.create(adminA, { name: 'used', role: 'viewer' });
    const v = new ApiKeyVerifier(repo, { cacheTtlMs: 0, lastUsedIntervalMs: 60_000 });
    await v.verify(key.key);
    const lastUsed = async () =>
      (
        await ds.query<{ last_used_at: Date | null }[]>(
          `SELECT last_used_at FROM auth.api_keys WHERE id = $1`,
          [key.id],
        )
      )[0]?.last_used_at ?? null;
    await waitFor(async () => (await lastUsed()) !== null, { what: 'last_used_at written' });
    const first = await lastUsed();
    await v.verify(key.key);
    await v.beforeApplicationShutdown();
    expect(await lastUsed()).toEqual(first);
    const listed = (await service.list(adminA, { limit: 100 })).items.find((k) => k.id === key.id);
    expect(listed?.lastUsedAt).toBe(first!.toISOString());
  });

  it('keeps audit events queued while Postgres refuses them, then writes them', async () => {
    await ds.query(`ALTER TABLE auth.audit_log RENAME TO audit_log_away`);
    const flaky = new AuditLog(new AuditRepository(ds), { retryMs: 50 });
    try {
      flaky.record({
        actor: 'x',
        actorKind: 'jwt',
        tenantId: 't',
        action: 'test.retry',
        resource: 'r',
        decision: 'deny',
      });
      await flaky.flush();
    } finally {
      await ds.query(`ALTER TABLE auth.audit_log_away RENAME TO audit_log`);
    }
    await waitFor(async () => (await auditRows('test.retry')).length === 1, {
      what: 'retried audit event written',
    });
    await flaky.beforeApplicationShutdown();
  });
});
