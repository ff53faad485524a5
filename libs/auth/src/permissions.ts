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
  developer: ['runs:create', 'runs:read', 'runs:cancel', 'agents:read', 'usage:read', 'dlq:manage', 'models:invoke'],
  executor: ['runs:create', 'runs:read', 'agents:read', 'models:invoke'],
  viewer: ['runs:read', 'agents:read', 'usage:read'],
};

export interface Principal {
  /** Who: key id, token `sub`, or `service:<name>`. */
  subject: string;
  tenantId: string;
  role: Role;
  permissions: ReadonlySet<Permission>;
  kind: 'api-key' | 'jwt' | 'service';
  /** An admin of tenant `*` sees every tenant. */
  platformAdmin: boolean;
}

export function principalFor(
  subject: string,
  tenantId: string,
  role: Role,
  kind: Principal['kind'],
): Principal {
  return {
    subject,
    tenantId,
    role,
    kind,
    permissions: new Set(ROLE_PERMISSIONS[role]),
    platformAdmin: role === 'admin' && tenantId === '*',
  };
}
