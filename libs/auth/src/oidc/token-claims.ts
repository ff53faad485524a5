import { DomainError } from '@aob/errors';
import {
  isRole,
  principalFor,
  ROLES,
  TENANT_ID_PATTERN,
  type Principal,
  type Role,
} from '../permissions';
import { CredentialRejected } from '../credential-rejected';

export interface ClaimNames {
  /** @default 'tenant_id' */
  tenantClaim: string;
  /** @default 'roles' */
  rolesClaim: string;
}

/** Roles from a claim that is an array of strings or one space-separated string; unknown roles are ignored. */
export function rolesFromClaim(value: unknown): Role[] {
  const names = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value : [];
  const known = new Set(names.filter(isRole));
  return ROLES.filter((r) => known.has(r));
}

/**
 * Scopes from `scope` (RFC 9068: space-separated) or `scp` (array or string, as Azure AD and Okta
 * send). Undefined when the token carries none: it is then limited by its roles alone.
 */
export function scopesFromClaims(payload: Record<string, unknown>): string[] | undefined {
  const raw = payload.scope ?? payload.scp;
  const list =
    typeof raw === 'string'
      ? raw.split(' ')
      : Array.isArray(raw)
        ? raw.filter((s): s is string => typeof s === 'string')
        : [];
  const scopes = list.filter((s) => s !== '');
  return scopes.length === 0 ? undefined : scopes;
}

/**
 * The caller a verified access token describes.
 * @throws DomainError Unauthorized without `sub`; Forbidden without a valid tenant or a known role
 */
export function principalFromClaims(
  payload: Record<string, unknown>,
  names: ClaimNames,
): Principal {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '')
    throw new DomainError('Unauthorized', 'token has no sub claim');
  const tenant = payload[names.tenantClaim];
  if (typeof tenant !== 'string' || !TENANT_ID_PATTERN.test(tenant)) {
    throw new CredentialRejected(
      'Forbidden',
      `token names no valid tenant (claim ${names.tenantClaim})`,
      {
        subject: sub,
        tenantId: typeof tenant === 'string' ? tenant.slice(0, 64) : '-',
        kind: 'jwt',
      },
    );
  }
  const roles = rolesFromClaim(payload[names.rolesClaim]);
  const [primary] = roles;
  if (primary === undefined) {
    throw new CredentialRejected(
      'Forbidden',
      `token grants no AOB role (claim ${names.rolesClaim}: one of ${ROLES.join(', ')})`,
      { subject: sub, tenantId: tenant, kind: 'jwt' },
    );
  }
  const scopes = scopesFromClaims(payload);
  return principalFor(sub, tenant, primary, 'jwt', {
    roles,
    ...(scopes === undefined ? {} : { scopes }),
  });
}
