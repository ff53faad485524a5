import { type DynamicModule, Global, Module, type Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DataSource } from '@aob/persistence';
import { ApiKeyVerifier } from './api-keys/api-key-verifier';
import { ApiKeyRepository } from './api-keys/api-key.repository';
import { ApiKeyService } from './api-keys/api-key.service';
import { AuditLog } from './audit/audit-log';
import { AuditRepository } from './audit/audit.repository';
import { AUTH_OPTIONS, type AuthOptions } from './auth-options';
import { AuthGuard } from './auth.guard';
import { Authenticator } from './authenticator';
import { OidcVerifier } from './oidc/oidc-verifier';

/**
 * Registers the global AuthGuard. With `useDatabase` it also provides `ApiKeyService` (and reads
 * the `DataSource` of the app's DatabaseModule); with `oidc` it verifies access tokens.
 */
@Global()
@Module({})
export class AuthModule {
  static forRoot(opts: AuthOptions): DynamicModule {
    const providers: Provider[] = [
      { provide: AUTH_OPTIONS, useValue: opts },
      opts.useDatabase
        ? {
            provide: AuditLog,
            inject: [DataSource],
            useFactory: (ds: DataSource) => new AuditLog(new AuditRepository(ds), opts.audit),
          }
        : { provide: AuditLog, useFactory: () => new AuditLog(undefined, opts.audit) },
      {
        provide: Authenticator,
        inject: [
          { token: OidcVerifier, optional: true },
          { token: ApiKeyVerifier, optional: true },
        ],
        useFactory: (oidc?: OidcVerifier, apiKeys?: ApiKeyVerifier) =>
          new Authenticator(opts, oidc, apiKeys),
      },
      AuthGuard,
      { provide: APP_GUARD, useExisting: AuthGuard },
    ];
    const exports: NonNullable<DynamicModule['exports']> = [
      AuthGuard,
      AUTH_OPTIONS,
      AuditLog,
      Authenticator,
    ];
    if (opts.oidc) {
      const oidc = opts.oidc;
      providers.push({ provide: OidcVerifier, useFactory: () => new OidcVerifier(oidc) });
    }
    if (opts.useDatabase) {
      providers.push(
        {
          provide: ApiKeyRepository,
          inject: [DataSource],
          useFactory: (ds: DataSource) => new ApiKeyRepository(ds),
        },
        {
          provide: ApiKeyVerifier,
          inject: [ApiKeyRepository],
          useFactory: (repo: ApiKeyRepository) => new ApiKeyVerifier(repo, opts.apiKeys),
        },
        {
          provide: ApiKeyService,
          inject: [ApiKeyRepository, ApiKeyVerifier, AuditLog],
          useFactory: (repo: ApiKeyRepository, verifier: ApiKeyVerifier, audit: AuditLog) =>
            new ApiKeyService(repo, verifier, audit),
        },
      );
      exports.push(ApiKeyService, ApiKeyVerifier);
    }
    return { module: AuthModule, providers, exports };
  }
}
