import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  Logger,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import type { Request } from 'express';
import { DomainError, isDomainError } from '@aob/errors';
import { counter, PUBLIC_ROUTE_KEY } from '@aob/observability';
import { AuditLog } from './audit/audit-log';
import { Authenticator } from './authenticator';
import { CredentialRejected } from './credential-rejected';
import type { Permission, Principal } from './permissions';

export const REQUIRED_PERMISSION_KEY = 'aob:permission';

/** The permission a route needs. Routes without one (and not @Public) need only a valid caller. */
export const RequirePermission = (p: Permission) => SetMetadata(REQUIRED_PERMISSION_KEY, p);

export type AuthenticatedRequest = Request & { principal?: Principal };

/** What the guard reads of a request (an express Request, or a plain node one described so). */
export interface AuthorizableRequest {
  headers: IncomingHttpHeaders;
  method: string;
  /** The URL path without the query. */
  path: string;
  /** The client address (express's `req.ip`, proxies trusted as the app says). */
  readonly ip?: string | undefined;
  /** The request id (pino-http's `req.id`). */
  id?: unknown;
  principal?: Principal;
}

const decisions = () =>
  counter({
    name: 'aob_auth_decisions_total',
    help: 'Authentication and authorization decisions by credential kind and outcome',
    labelNames: ['kind', 'outcome'] as const,
  });

/**
 * Authenticates every request that is not @Public and checks the route's permission. Denials
 * (403) are audited; authentication failures (401) are logged and counted but not written to
 * Postgres, so unauthenticated traffic cannot fill the audit table.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger('auth');

  constructor(
    private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(AuditLog) private readonly audit: AuditLog,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE_KEY, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const needed = this.reflector.getAllAndOverride<Permission | undefined>(
      REQUIRED_PERMISSION_KEY,
      targets,
    );
    await this.authorize(req, needed);
    return true;
  }

  /**
   * The guard's whole decision for one request: authenticates it (setting `req.principal`) and
   * checks `needed`, with the same counters, logs and audit records. For handlers that serve a
   * route outside Nest's routing (the model gateway's raw chat completions path).
   * @throws DomainError Unauthorized, Forbidden or Unavailable
   */
  async authorize(req: AuthorizableRequest, needed: Permission | undefined): Promise<Principal> {
    const principal = await this.authenticate(req);
    req.principal = principal;
    if (needed && !principal.permissions.has(needed)) {
      decisions().inc({ kind: principal.kind, outcome: 'forbidden' });
      this.audit.record({
        actor: principal.subject,
        actorKind: principal.kind,
        tenantId: principal.tenantId,
        action: 'route.access',
        resource: resourceOf(req),
        decision: 'deny',
        reason: `missing permission ${needed}`,
        details: {
          permission: needed,
          role: principal.role,
          ...(principal.scopes ? { scopes: principal.scopes } : {}),
        },
        ...requestIdOf(req),
      });
      throw new DomainError('Forbidden', `missing permission ${needed}`, {
        details: { permission: needed },
      });
    }
    decisions().inc({ kind: principal.kind, outcome: 'allowed' });
    return principal;
  }

  private async authenticate(req: AuthorizableRequest): Promise<Principal> {
    try {
      return await this.authenticator.authenticate(req.headers);
    } catch (err) {
      if (err instanceof CredentialRejected) {
        decisions().inc({ kind: err.actor.kind, outcome: 'forbidden' });
        this.audit.record({
          actor: err.actor.subject,
          actorKind: err.actor.kind,
          tenantId: err.actor.tenantId,
          action: 'route.access',
          resource: resourceOf(req),
          decision: 'deny',
          reason: err.message,
          ...requestIdOf(req),
        });
      } else if (isDomainError(err) && err.code === 'Unauthorized') {
        decisions().inc({ kind: credentialKind(req), outcome: 'unauthorized' });
        this.logger.log(
          { resource: resourceOf(req), reason: err.message, ip: req.ip, ...requestIdOf(req) },
          'authentication failed',
        );
      } else {
        decisions().inc({ kind: credentialKind(req), outcome: 'unavailable' });
      }
      throw err;
    }
  }
}

function resourceOf(req: AuthorizableRequest): string {
  return `${req.method} ${req.path}`;
}

function requestIdOf(req: AuthorizableRequest): { requestId?: string } {
  const id = req.id;
  return typeof id === 'string' || typeof id === 'number' ? { requestId: String(id) } : {};
}

function credentialKind(req: AuthorizableRequest): string {
  if (req.headers['x-api-key'] !== undefined) return 'api-key';
  return req.headers.authorization === undefined ? 'none' : 'bearer';
}
