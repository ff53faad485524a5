import { z } from 'zod';
import { booleanFromEnv, ConfigError, durationMs, type BaseEnv } from '@aob/config';
import type { AuthOptions } from './auth-options';

/**
 * Identity variables (CONTRACT.md section 2, plus tuning). Apps that authenticate callers merge
 * them into their schema: `baseEnvSchema.extend({ ...authEnvSchema.shape, ... })`.
 */
export const authEnvSchema = z.object({
  /** Issuer; discovery at `/.well-known/openid-configuration`. Unset: OIDC off (JWTs answer 401). */
  OIDC_ISSUER_URL: z.url().optional(),
  /** Required `aud` of access tokens; required with OIDC_ISSUER_URL. */
  OIDC_AUDIENCE: z.string().min(1).optional(),
  OIDC_TENANT_CLAIM: z.string().min(1).default('tenant_id'),
  OIDC_ROLES_CLAIM: z.string().min(1).default('roles'),
  /** Clock skew allowed on exp/nbf, seconds. */
  OIDC_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  /** Minimum pause between two JWKS fetches triggered by unknown key ids. */
  OIDC_JWKS_COOLDOWN_MS: durationMs(30_000),
  /** Accept an http:// issuer that is not loopback (loopback always is). Never in production. */
  OIDC_ALLOW_INSECURE_HTTP: booleanFromEnv(false),
  /** How long a verified API key is cached; also how long a revocation takes to reach other processes. */
  API_KEY_CACHE_MS: durationMs(30_000),
});
export type AuthEnv = z.infer<typeof authEnvSchema>;

type AuthConfigInput = AuthEnv &
  Pick<BaseEnv, 'AOB_BOOTSTRAP_TENANT'> &
  Partial<Pick<BaseEnv, 'AOB_BOOTSTRAP_ADMIN_KEY' | 'AOB_SERVICE_KEY'>>;

/**
 * AuthOptions from a parsed config. `useDatabase`: the app installs DatabaseModule, so stored API
 * keys are accepted and audit events reach auth.audit_log.
 * @throws ConfigError when OIDC_ISSUER_URL is set without OIDC_AUDIENCE
 */
export function authOptionsFromEnv(
  env: AuthConfigInput,
  opts: { useDatabase: boolean },
): AuthOptions {
  if (env.OIDC_ISSUER_URL !== undefined && env.OIDC_AUDIENCE === undefined) {
    throw new ConfigError(
      'invalid configuration: OIDC_AUDIENCE is required when OIDC_ISSUER_URL is set',
      [{ path: 'OIDC_AUDIENCE', message: 'required when OIDC_ISSUER_URL is set' }],
    );
  }
  return {
    bootstrapTenant: env.AOB_BOOTSTRAP_TENANT,
    ...(env.AOB_BOOTSTRAP_ADMIN_KEY === undefined
      ? {}
      : { bootstrapAdminKey: env.AOB_BOOTSTRAP_ADMIN_KEY }),
    ...(env.AOB_SERVICE_KEY === undefined ? {} : { serviceKey: env.AOB_SERVICE_KEY }),
    ...(env.OIDC_ISSUER_URL === undefined || env.OIDC_AUDIENCE === undefined
      ? {}
      : {
          oidc: {
            issuerUrl: env.OIDC_ISSUER_URL,
            audience: env.OIDC_AUDIENCE,
            tenantClaim: env.OIDC_TENANT_CLAIM,
            rolesClaim: env.OIDC_ROLES_CLAIM,
            clockToleranceSeconds: env.OIDC_CLOCK_SKEW_SECONDS,
            jwksCooldownMs: env.OIDC_JWKS_COOLDOWN_MS,
            allowInsecureHttp: env.OIDC_ALLOW_INSECURE_HTTP,
          },
        }),
    useDatabase: opts.useDatabase,
    apiKeys: { cacheTtlMs: env.API_KEY_CACHE_MS },
  };
}
