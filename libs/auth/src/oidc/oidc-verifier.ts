import { Logger, type OnModuleInit } from '@nestjs/common';
import type * as JoseModule from 'jose' with { 'resolution-mode': 'import' };
import type { JWTPayload, JWTVerifyGetKey } from 'jose' with { 'resolution-mode': 'import' };
import type * as OpenIdClientModule from 'openid-client' with { 'resolution-mode': 'import' };
import { DomainError } from '@aob/errors';
import type { Principal } from '../permissions';
import { principalFromClaims } from './token-claims';

// jose and openid-client v6 are ESM-only: loaded with import() (Node's require(esm) would also do,
// but TypeScript's node16 CommonJS output cannot express it).
type Jose = typeof JoseModule;
type OpenIdClient = typeof OpenIdClientModule;

/**
 * Asymmetric JWS algorithms accepted on access tokens. Never `none`, never HS*: with a public
 * key as the "secret", an HMAC token could be forged by anyone.
 */
export const ACCEPTED_JWS_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

/** `typ` values of an access token: RFC 9068 `at+jwt`, plain JWT, or none at all. */
const ACCEPTED_TYP = new Set(['jwt', 'application/jwt', 'at+jwt', 'application/at+jwt']);

export interface OidcOptions {
  /** OIDC_ISSUER_URL: discovery at `<issuer>/.well-known/openid-configuration`. */
  issuerUrl: string;
  /** OIDC_AUDIENCE: the `aud` every access token must name. */
  audience: string;
  /** OIDC_TENANT_CLAIM. @default 'tenant_id' */
  tenantClaim?: string;
  /** OIDC_ROLES_CLAIM (an array, or a space-separated string). @default 'roles' */
  rolesClaim?: string;
  /** Clock skew allowed on exp/nbf/iat, in seconds. @default 30 */
  clockToleranceSeconds?: number;
  /** After a JWKS fetch, an unknown `kid` triggers another only after this long. @default 30000 */
  jwksCooldownMs?: number;
  /** The JWKS is refetched at least this often. @default 600000 */
  jwksCacheMaxAgeMs?: number;
  /** Allow an http:// issuer that is not a loopback address (loopback always is). @default false */
  allowInsecureHttp?: boolean;
  /** A failed discovery is retried on a later request, at most this often. @default 5000 */
  discoveryRetryMs?: number;
  /** Timeout of discovery and JWKS requests. @default 5000 */
  httpTimeoutMs?: number;
}

interface Discovered {
  jose: Jose;
  issuer: string;
  jwks: JWTVerifyGetKey;
}

/**
 * Verifies OIDC access tokens: discovery with openid-client, signatures against the provider's
 * JWKS with jose (cached; an unknown `kid` refetches it, so provider key rotation just works),
 * `iss`, `aud`, `exp`/`nbf` with a small skew, an allow-list of algorithms, `typ` JWT or at+jwt.
 */
export class OidcVerifier implements OnModuleInit {
  private readonly logger = new Logger('auth');
  private discovered: Discovered | undefined;
  private discovering: Promise<Discovered> | undefined;
  private lastFailure: { at: number; error: unknown } | undefined;
  private readonly tenantClaim: string;
  private readonly rolesClaim: string;

  constructor(private readonly opts: OidcOptions) {
    this.tenantClaim = opts.tenantClaim ?? 'tenant_id';
    this.rolesClaim = opts.rolesClaim ?? 'roles';
  }

  /** Starts discovery at boot without waiting for it: API keys work while the provider is away. */
  onModuleInit(): void {
    this.ready().catch(() => {
      // logged by discover(); retried on the first request that needs it
    });
  }

  /**
   * The caller of a verified access token.
   * @throws DomainError Unauthorized (bad token), Forbidden (no tenant or role), Unavailable (provider unreachable)
   */
  async verify(token: string): Promise<Principal> {
    const { jose, issuer, jwks } = await this.ready();
    let header;
    try {
      header = jose.decodeProtectedHeader(token);
    } catch {
      throw new DomainError('Unauthorized', 'bearer token is not a valid JWS');
    }
    if (
      typeof header.alg !== 'string' ||
      !(ACCEPTED_JWS_ALGORITHMS as readonly string[]).includes(header.alg)
    ) {
      throw new DomainError(
        'Unauthorized',
        `token algorithm ${String(header.alg)} is not accepted`,
      );
    }
    if (header.typ !== undefined && !ACCEPTED_TYP.has(String(header.typ).toLowerCase())) {
      throw new DomainError(
        'Unauthorized',
        `token typ ${String(header.typ)} is not an access token`,
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, jwks, {
        issuer,
        audience: this.opts.audience,
        algorithms: [...ACCEPTED_JWS_ALGORITHMS],
        clockTolerance: this.opts.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw this.rejection(err);
    }
    return principalFromClaims(payload, {
      tenantClaim: this.tenantClaim,
      rolesClaim: this.rolesClaim,
    });
  }

  private async ready(): Promise<Discovered> {
    if (this.discovered) return this.discovered;
    if (this.discovering) return this.discovering;
    const retryMs = this.opts.discoveryRetryMs ?? 5_000;
    if (this.lastFailure && Date.now() - this.lastFailure.at < retryMs) {
      throw new DomainError('Unavailable', 'the identity provider is unreachable', {
        retryable: true,
        details: { retryAfterSeconds: Math.ceil(retryMs / 1000) },
        cause: this.lastFailure.error,
      });
    }
    this.discovering = this.discover().finally(() => {
      this.discovering = undefined;
    });
    return this.discovering;
  }

  private async discover(): Promise<Discovered> {
    const issuerUrl = new URL(this.opts.issuerUrl);
    const timeoutMs = this.opts.httpTimeoutMs ?? 5_000;
    try {
      const [jose, oidc]: [Jose, OpenIdClient] = await Promise.all([
        import('jose'),
        import('openid-client'),
      ]);
      const insecure =
        issuerUrl.protocol === 'http:' && (this.opts.allowInsecureHttp || isLoopback(issuerUrl));
      // AOB is a resource server, not a client: the client id is required by the API but never used.
      const config = await oidc.discovery(issuerUrl, this.opts.audience, undefined, undefined, {
        ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
        timeout: Math.ceil(timeoutMs / 1000),
      });
      const meta = config.serverMetadata();
      if (!meta.jwks_uri) throw new Error('the provider metadata has no jwks_uri');
      const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri), {
        timeoutDuration: timeoutMs,
        cooldownDuration: this.opts.jwksCooldownMs ?? 30_000,
        cacheMaxAge: this.opts.jwksCacheMaxAgeMs ?? 600_000,
      });
      this.discovered = { jose, issuer: meta.issuer, jwks };
      this.lastFailure = undefined;
      this.logger.log({ issuer: meta.issuer, jwksUri: meta.jwks_uri }, 'OIDC provider discovered');
      return this.discovered;
    } catch (err) {
      this.lastFailure = { at: Date.now(), error: err };
      this.logger.error(
        { err, issuer: this.opts.issuerUrl },
        'OIDC discovery failed; bearer tokens answer 503 until it succeeds',
      );
      throw new DomainError('Unavailable', 'the identity provider is unreachable', {
        retryable: true,
        cause: err,
      });
    }
  }

  /** jose's verdict as a 401 (the token) or a 503 (the provider's key set could not be fetched). */
  private rejection(err: unknown): DomainError {
    const code = (err as { code?: unknown }).code;
    switch (code) {
      case 'ERR_JWT_EXPIRED':
        return new DomainError('Unauthorized', 'token expired');
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        return new DomainError('Unauthorized', `token rejected: ${(err as Error).message}`);
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return new DomainError('Unauthorized', 'token signature is invalid');
      case 'ERR_JWKS_NO_MATCHING_KEY':
        return new DomainError(
          'Unauthorized',
          'token is signed by a key the identity provider does not publish',
        );
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        return new DomainError('Unauthorized', 'token algorithm is not accepted');
      case 'ERR_JWKS_TIMEOUT':
      case 'ERR_JWKS_INVALID':
      case 'ERR_JOSE_GENERIC':
      case undefined:
        this.logger.warn({ err }, 'the identity provider key set could not be fetched');
        return new DomainError(
          'Unavailable',
          'the identity provider key set could not be fetched',
          {
            retryable: true,
            cause: err,
          },
        );
      default:
        return new DomainError('Unauthorized', 'invalid token');
    }
  }
}

function isLoopback(u: URL): boolean {
  return (
    u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname)
  );
}
