import { createHash, timingSafeEqual } from 'node:crypto';
import { DomainError } from '@aob/errors';
import type { ApiKeyVerifier } from './api-keys/api-key-verifier';
import type { AuthOptions } from './auth-options';
import { extractCredential, MalformedCredentialError } from './credentials';
import type { OidcVerifier } from './oidc/oidc-verifier';
import { principalFor, type Principal } from './permissions';

/** A real tenant (never `*`): the one the service key acts for. */
const SERVICE_TENANT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type Headers = Record<string, string | string[] | undefined>;

const sha256 = (value: string) => createHash('sha256').update(value).digest();
/** Service principals kept per tenant; past this many the map starts over. */
const MAX_SERVICE_PRINCIPALS = 1_000;

/**
 * Turns a request's credential into a Principal: the bootstrap admin key, the service key, a
 * stored API key, or an OIDC access token.
 */
export class Authenticator {
  /** SHA-256 of the configured keys, taken once: a request hashes only its own credential. */
  private readonly adminKeyDigest: Buffer | undefined;
  private readonly serviceKeyDigest: Buffer | undefined;
  /** The principals of the configured keys never change: made once (per tenant for the service). */
  private adminPrincipal: Principal | undefined;
  private readonly servicePrincipals = new Map<string, Principal>();

  constructor(
    private readonly opts: AuthOptions,
    private readonly oidc: OidcVerifier | undefined,
    private readonly apiKeys: ApiKeyVerifier | undefined,
  ) {
    this.adminKeyDigest = opts.bootstrapAdminKey ? sha256(opts.bootstrapAdminKey) : undefined;
    this.serviceKeyDigest = opts.serviceKey ? sha256(opts.serviceKey) : undefined;
  }

  /**
   * @throws DomainError Unauthorized (no, malformed or bad credential), Forbidden (a token without
   * tenant or role), Unavailable (the provider or Postgres cannot verify it now)
   */
  async authenticate(headers: Headers): Promise<Principal> {
    let cred;
    try {
      cred = extractCredential(headers);
    } catch (err) {
      if (err instanceof MalformedCredentialError)
        throw new DomainError('Unauthorized', err.message);
      throw err;
    }
    if (!cred)
      throw new DomainError(
        'Unauthorized',
        'credentials required: X-API-Key or Authorization: Bearer',
      );
    if (cred.kind === 'jwt') {
      if (!this.oidc)
        throw new DomainError(
          'Unauthorized',
          'bearer tokens are not accepted: OIDC is not configured',
        );
      return this.oidc.verify(cred.value);
    }
    // constant time: digests of equal length compared with timingSafeEqual (as secretEquals)
    const digest = this.adminKeyDigest || this.serviceKeyDigest ? sha256(cred.value) : undefined;
    if (digest && this.adminKeyDigest && timingSafeEqual(digest, this.adminKeyDigest)) {
      return (this.adminPrincipal ??= principalFor(
        'bootstrap-admin',
        this.opts.bootstrapTenant,
        'admin',
        'api-key',
      ));
    }
    if (digest && this.serviceKeyDigest && timingSafeEqual(digest, this.serviceKeyDigest)) {
      const tenant = headers['x-aob-tenant-id'];
      if (typeof tenant !== 'string' || !SERVICE_TENANT.test(tenant)) {
        throw new DomainError(
          'Unauthorized',
          'service calls must name the tenant in x-aob-tenant-id',
        );
      }
      let principal = this.servicePrincipals.get(tenant);
      if (!principal) {
        if (this.servicePrincipals.size >= MAX_SERVICE_PRINCIPALS) this.servicePrincipals.clear();
        principal = principalFor('service', tenant, 'executor', 'service');
        this.servicePrincipals.set(tenant, principal);
      }
      return principal;
    }
    if (this.apiKeys) return this.apiKeys.verify(cred.value);
    throw new DomainError('Unauthorized', 'invalid credentials');
  }
}
