export * from './permissions';
export {
  extractCredential,
  secretEquals,
  MalformedCredentialError,
  MAX_CREDENTIAL_LENGTH,
  type Credential,
} from './credentials';
export {
  generateApiKey,
  storedKeyPrefix,
  hashApiKey,
  type NewApiKeyMaterial,
} from './api-key-format';
export { AUTH_OPTIONS, type AuthOptions } from './auth-options';
export { authEnvSchema, authOptionsFromEnv, type AuthEnv } from './auth-env';
export {
  AuthGuard,
  RequirePermission,
  REQUIRED_PERMISSION_KEY,
  type AuthenticatedRequest,
  type AuthorizableRequest,
} from './auth.guard';
export { Authenticator } from './authenticator';
export { CredentialRejected, type RejectedActor } from './credential-rejected';
export { CurrentPrincipal } from './current-principal.decorator';
export { AuthModule } from './auth.module';
export { OidcVerifier, ACCEPTED_JWS_ALGORITHMS, type OidcOptions } from './oidc/oidc-verifier';
export {
  principalFromClaims,
  rolesFromClaim,
  scopesFromClaims,
  type ClaimNames,
} from './oidc/token-claims';
export {
  ApiKeyRepository,
  ALL_TENANTS,
  type TenantScope,
  type ApiKeyRecord,
  type ApiKeyListQuery,
} from './api-keys/api-key.repository';
export {
  ApiKeyVerifier,
  apiKeySubject,
  type ApiKeyVerifierOptions,
} from './api-keys/api-key-verifier';
export {
  ApiKeyService,
  apiKeyCreateRequestSchema,
  type ApiKeyCreateRequest,
  type ApiKeyView,
  type CreatedApiKey,
  type ApiKeyPage,
  type AuditContext,
} from './api-keys/api-key.service';
export { AuditLog, type AuditLogOptions, type AuditInput } from './audit/audit-log';
export { AuditRepository, type AuditEvent } from './audit/audit.repository';
export { Public } from '@aob/observability';
