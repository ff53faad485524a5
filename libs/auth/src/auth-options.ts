import type { ApiKeyVerifierOptions } from './api-keys/api-key-verifier';
import type { AuditLogOptions } from './audit/audit-log';
import type { OidcOptions } from './oidc/oidc-verifier';

export const AUTH_OPTIONS = Symbol('AUTH_OPTIONS');

export interface AuthOptions {
  /** AOB_BOOTSTRAP_ADMIN_KEY: works as role admin of `bootstrapTenant`. */
  bootstrapAdminKey?: string;
  /** @default 'default' */
  bootstrapTenant: string;
  /** AOB_SERVICE_KEY: service-to-service calls; the tenant comes from `x-aob-tenant-id`. */
  serviceKey?: string;
  /** OIDC access tokens. Unset: every JWT answers 401. */
  oidc?: OidcOptions;
  /**
   * Stored API keys (auth.api_keys) and the audit table (auth.audit_log) in Postgres, through the
   * app's `DataSource` (install `DatabaseModule.forRoot`). Off: only the bootstrap and service
   * keys, and audit events are log lines only. @default false
   */
  useDatabase?: boolean;
  apiKeys?: ApiKeyVerifierOptions;
  audit?: AuditLogOptions;
}
