import { type CanActivate, type ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { DomainError } from '@aob/errors';
import { PUBLIC_ROUTE_KEY } from '@aob/observability';
import { extractCredential, secretEquals } from './credentials';
import { type Permission, type Principal, principalFor } from './permissions';

export const AUTH_OPTIONS = Symbol('AUTH_OPTIONS');
export const REQUIRED_PERMISSION_KEY = 'aob:permission';

/** The permission a route needs. Routes without one (and not @Public) need only a valid caller. */
export const RequirePermission = (p: Permission) => SetMetadata(REQUIRED_PERMISSION_KEY, p);

export interface AuthOptions {
  /** AOB_BOOTSTRAP_ADMIN_KEY: works as role admin of `bootstrapTenant`. */
  bootstrapAdminKey?: string;
  /** @default 'default' */
  bootstrapTenant: string;
  /** AOB_SERVICE_KEY: service-to-service calls; the tenant comes from `x-aob-tenant-id`. */
  serviceKey?: string;
}

export type AuthenticatedRequest = Request & { principal?: Principal };

/**
 * Authenticates every request that is not @Public and checks the route's permission.
 * This first version knows the bootstrap admin key and the service key; OIDC and stored API
 * keys come with the identity issue.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(AUTH_OPTIONS) private readonly opts: AuthOptions,
  ) {}

  canActivate(ctx: ExecutionContext): boolean {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE_KEY, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const principal = this.authenticate(req);
    req.principal = principal;
    const needed = this.reflector.getAllAndOverride<Permission | undefined>(REQUIRED_PERMISSION_KEY, targets);
    if (needed && !principal.permissions.has(needed)) {
      throw new DomainError('Forbidden', `missing permission ${needed}`, { details: { permission: needed } });
    }
    return true;
  }

  authenticate(req: Request): Principal {
    let cred;
    try {
      cred = extractCredential(req.headers);
    } catch (err) {
      throw new DomainError('Unauthorized', (err as Error).message);
    }
    if (!cred) throw new DomainError('Unauthorized', 'credentials required: X-API-Key or Authorization: Bearer');
    if (cred.kind === 'jwt') throw new DomainError('Unauthorized', 'bearer tokens are not accepted: OIDC is not configured');
    if (this.opts.bootstrapAdminKey && secretEquals(cred.value, this.opts.bootstrapAdminKey)) {
      return principalFor('bootstrap-admin', this.opts.bootstrapTenant, 'admin', 'api-key');
    }
    if (this.opts.serviceKey && secretEquals(cred.value, this.opts.serviceKey)) {
      const tenant = req.headers['x-aob-tenant-id'];
      if (typeof tenant !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(tenant)) {
        throw new DomainError('Unauthorized', 'service calls must name the tenant in x-aob-tenant-id');
      }
      return principalFor('service', tenant, 'executor', 'service');
    }
    throw new DomainError('Unauthorized', 'invalid credentials');
  }
}
