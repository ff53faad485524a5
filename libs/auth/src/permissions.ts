export const ROLES = ['admin', 'developer', 'executor', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'runs:create',
  'runs:read',
  'runs:cancel',
  'agents:read',
  'usage:read',
  'quotas:manage',
  'keys:manage',
  'dlq:manage',
  'models:invoke',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The one place roles map to permissions (CONTRACT.md section 6). */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  admin: PERMISSIONS,
  developer: [
    'runs:create',
    'runs:read',
    'runs:cancel',
    'agents:read',
    'usage:read',
    'dlq:manage',
    'models:invoke',
  ],
  executor: ['runs:create', 'runs:read', 'agents:read', 'models:invoke'],
  viewer: ['runs:read', 'agents:read', 'usage:read'],
};

/** Tenant ids: as `TENANT_PATTERN` of the event catalog; `*` is the platform tenant. */
export const TENANT_ID_PATTERN = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;
/** The tenant whose admins are platform admins. */
export const PLATFORM_TENANT = '*';

export interface Principal {
  /** Who: `api-key:<id>`, a token's `sub`, `bootstrap-admin` or `service`. */
  subject: string;
  tenantId: string;
  /** The most powerful of the caller's roles (admin > developer > executor > viewer). */
  role: Role;
  /** The role's grants, narrowed by `scopes` when the credential carries some. */
  permissions: ReadonlySet<Permission>;
  kind: 'api-key' | 'jwt' | 'service';
  /** An admin of tenant `*` sees every tenant. */
  platformAdmin: boolean;
  /** Scopes the credential carried (unknown ones dropped); undefined: not restricted by scopes. */
  scopes?: readonly Permission[];
}

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

export function isPermission(v: unknown): v is Permission {
  return typeof v === 'string' && (PERMISSIONS as readonly string[]).includes(v);
}

/**
 * What a credential may do: the union of its roles' grants, intersected with its scopes when it
 * carries any. Scopes that are not AOB permissions (`openid`, `profile`...) grant nothing.
 */
export function effectivePermissions(
  roles: readonly Role[],
  scopes?: readonly string[],
): Set<Permission> {
  const granted = new Set<Permission>(roles.flatMap((r) => ROLE_PERMISSIONS[r]));
  if (scopes === undefined) return granted;
  const allowed = new Set(scopes);
  return new Set([...granted].filter((p) => allowed.has(p)));
}

export interface PrincipalOptions {
  /** More roles of the same caller (OIDC tokens may carry several); `role` is always included. */
  roles?: readonly Role[];
  /** Scopes of the credential; undefined = not restricted. */
  scopes?: readonly string[];
}

export function principalFor(
  subject: string,
  tenantId: string,
  role: Role,
  kind: Principal['kind'],
  opts: PrincipalOptions = {},
): Principal {
  const roles = [...new Set([role, ...(opts.roles ?? [])])];
  const primary = ROLES.find((r) => roles.includes(r)) ?? role;
  const scopes = opts.scopes?.filter(isPermission);
  return {
    subject,
    tenantId,
    role: primary,
    kind,
    permissions: effectivePermissions(roles, opts.scopes),
    platformAdmin: roles.includes('admin') && tenantId === PLATFORM_TENANT,
    ...(scopes === undefined ? {} : { scopes }),
  };
}

/**
 * The permissions `requested` needs that `holder` lacks: a caller may never mint a credential
 * more powerful than itself. Empty when the grant is allowed.
 */
export function missingForGrant(
  holder: Principal,
  role: Role,
  scopes?: readonly Permission[],
): Permission[] {
  return [...effectivePermissions([role], scopes)].filter((p) => !holder.permissions.has(p));
}
