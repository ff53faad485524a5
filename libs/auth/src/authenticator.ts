import { DomainError } from '@aob/errors';
import type { ApiKeyVerifier } from './api-keys/api-key-verifier';
import type { AuthOptions } from './auth-options';
import { extractCredential, MalformedCredentialError, secretEquals } from './credentials';
import type { OidcVerifier } from './oidc/oidc-verifier';
import { principalFor, type Principal } from './permissions';

/** A real tenant (never `*`): the one the service key acts for. */
const SERVICE_TENANT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type Headers = Record<string, string | string[] | undefined>;

/**
 * Turns a request's credential into a Principal: the bootstrap admin key, the service key, a
 * stored API key, or an OIDC access token.
 */
export class Authenticator {
  constructor(
    private readonly opts: AuthOptions,
    private readonly oidc: OidcVerifier | undefined,
    private readonly apiKeys: ApiKeyVerifier | undefined,
  ) {}

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
    if (this.opts.bootstrapAdminKey && secretEquals(cred.value, this.opts.bootstrapAdminKey)) {
      return principalFor('bootstrap-admin', this.opts.bootstrapTenant, 'admin', 'api-key');
    }
    if (this.opts.serviceKey && secretEquals(cred.value, this.opts.serviceKey)) {
      const tenant = headers['x-aob-tenant-id'];
      if (typeof tenant !== 'string' || !SERVICE_TENANT.test(tenant)) {
        throw new DomainError(
          'Unauthorized',
          'service calls must name the tenant in x-aob-tenant-id',
        );
      }
      return principalFor('service', tenant, 'executor', 'service');
    }
    if (this.apiKeys) return this.apiKeys.verify(cred.value);
    throw new DomainError('Unauthorized', 'invalid credentials');
  }
}
