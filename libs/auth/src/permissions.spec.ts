import { TENANT_PATTERN } from '@aob/events';
import { generateApiKey, hashApiKey, storedKeyPrefix } from './api-key-format';
import {
  effectivePermissions,
  missingForGrant,
  PERMISSIONS,
  principalFor,
  ROLE_PERMISSIONS,
  ROLES,
  TENANT_ID_PATTERN,
} from './permissions';
import { principalFromClaims, rolesFromClaim, scopesFromClaims } from './oidc/token-claims';

describe('roles and permissions', () => {
  it('matches the contract table', () => {
    expect(ROLE_PERMISSIONS.admin).toEqual(PERMISSIONS);
    expect(ROLE_PERMISSIONS.viewer).toEqual(['runs:read', 'agents:read', 'usage:read']);
    expect(ROLE_PERMISSIONS.executor).toContain('models:invoke');
    expect(ROLE_PERMISSIONS.developer).not.toContain('keys:manage');
  });

  it('intersects role grants with scopes when scopes are present', () => {
    expect([...effectivePermissions(['admin'])]).toEqual([...PERMISSIONS]);
    expect([...effectivePermissions(['viewer'], ['runs:read', 'runs:create', 'openid'])]).toEqual([
      'runs:read',
    ]);
    expect(effectivePermissions(['admin'], []).size).toBe(0);
  });

  it('makes an admin of tenant * a platform admin, nobody else', () => {
    expect(principalFor('s', '*', 'admin', 'jwt').platformAdmin).toBe(true);
    expect(principalFor('s', '*', 'developer', 'jwt').platformAdmin).toBe(false);
    expect(principalFor('s', 'acme', 'admin', 'jwt').platformAdmin).toBe(false);
    expect(principalFor('s', '*', 'viewer', 'jwt', { roles: ['admin'] }).platformAdmin).toBe(true);
  });

  it('picks the strongest role as the principal role and unites the grants', () => {
    const p = principalFor('s', 't', 'viewer', 'jwt', { roles: ['executor'] });
    expect(p.role).toBe('executor');
    expect(p.permissions.has('usage:read') && p.permissions.has('models:invoke')).toBe(true);
  });

  it('never lets a caller grant what it lacks', () => {
    const admin = principalFor('a', 't', 'admin', 'api-key');
    for (const role of ROLES) expect(missingForGrant(admin, role)).toEqual([]);
    const scopedAdmin = principalFor('a', 't', 'admin', 'api-key', {
      scopes: ['keys:manage', 'runs:read'],
    });
    expect(missingForGrant(scopedAdmin, 'viewer')).toEqual(['agents:read', 'usage:read']);
    expect(missingForGrant(scopedAdmin, 'viewer', ['runs:read'])).toEqual([]);
    expect(missingForGrant(scopedAdmin, 'admin', ['keys:manage'])).toEqual([]);
    const dev = principalFor('d', 't', 'developer', 'jwt');
    expect(missingForGrant(dev, 'admin')).toEqual(['quotas:manage', 'keys:manage']);
  });

  it('uses the event catalog tenant pattern', () => {
    expect(TENANT_ID_PATTERN.source).toBe(TENANT_PATTERN.source);
  });
});

describe('token claims', () => {
  const names = { tenantClaim: 'tenant_id', rolesClaim: 'roles' };

  it('reads roles as an array or a space-separated string, dropping unknown ones', () => {
    expect(rolesFromClaim(['viewer', 'root', 'admin'])).toEqual(['admin', 'viewer']);
    expect(rolesFromClaim('developer  superuser viewer')).toEqual(['developer', 'viewer']);
    expect(rolesFromClaim(42)).toEqual([]);
    expect(rolesFromClaim([1, null, 'executor'])).toEqual(['executor']);
  });

  it('reads scope or scp; empty means unrestricted', () => {
    expect(scopesFromClaims({ scope: 'runs:read  agents:read' })).toEqual([
      'runs:read',
      'agents:read',
    ]);
    expect(scopesFromClaims({ scp: ['runs:read', 3] })).toEqual(['runs:read']);
    expect(scopesFromClaims({ scp: 'runs:read' })).toEqual(['runs:read']);
    expect(scopesFromClaims({ scope: '' })).toBeUndefined();
    expect(scopesFromClaims({})).toBeUndefined();
  });

  it('honours custom claim names', () => {
    const p = principalFromClaims(
      { sub: 'u1', 'https://aob.dev/tenant': 'acme', groups: ['developer'] },
      { tenantClaim: 'https://aob.dev/tenant', rolesClaim: 'groups' },
    );
    expect(p).toMatchObject({ subject: 'u1', tenantId: 'acme', role: 'developer', kind: 'jwt' });
  });

  it('401s without sub, 403s without tenant or role', () => {
    expect(() => principalFromClaims({ tenant_id: 't', roles: ['admin'] }, names)).toThrow(
      expect.objectContaining({ code: 'Unauthorized' }),
    );
    expect(() => principalFromClaims({ sub: 'u', roles: ['admin'] }, names)).toThrow(
      expect.objectContaining({ code: 'Forbidden' }),
    );
    expect(() => principalFromClaims({ sub: 'u', tenant_id: 't', roles: ['root'] }, names)).toThrow(
      expect.objectContaining({ code: 'Forbidden' }),
    );
  });
});

describe('API key format', () => {
  it('has a visible prefix from the id, never looks like a JWT, and hashes to 32 bytes', () => {
    const k = generateApiKey();
    expect(k.key).toMatch(/^aob_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(k.prefix).toBe(k.id.slice(0, 8));
    expect(storedKeyPrefix(k.key)).toBe(k.prefix);
    expect(k.key).not.toContain('.');
    expect(k.hash).toEqual(hashApiKey(k.key));
    expect(k.hash).toHaveLength(32);
    expect(generateApiKey().key).not.toBe(k.key);
  });

  it('rejects anything else as a stored key', () => {
    expect(storedKeyPrefix('aob_0123456_' + 'a'.repeat(43))).toBeUndefined();
    expect(storedKeyPrefix('aob_01234567_' + 'a'.repeat(42))).toBeUndefined();
    expect(storedKeyPrefix('test-admin-key-0123456789abcdef')).toBeUndefined();
  });
});
