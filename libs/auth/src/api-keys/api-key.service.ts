import { z } from 'zod';
import { DomainError } from '@aob/errors';
import { generateApiKey } from '../api-key-format';
import type { AuditLog } from '../audit/audit-log';
import {
  missingForGrant,
  PERMISSIONS,
  ROLES,
  TENANT_ID_PATTERN,
  type Permission,
  type Principal,
  type Role,
} from '../permissions';
import type { ApiKeyVerifier } from './api-key-verifier';
import {
  ALL_TENANTS,
  type ApiKeyRecord,
  type ApiKeyRepository,
  type TenantScope,
} from './api-key.repository';

/** Body of `POST /v1/api-keys`. */
export const apiKeyCreateRequestSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  role: z.enum(ROLES),
  /** Narrow the role: the key gets the role's permissions that are also listed here. */
  scopes: z
    .array(z.enum(PERMISSIONS))
    .min(1)
    .max(PERMISSIONS.length)
    .optional()
    .describe("the key may use only these of its role's permissions"),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  tenantId: z
    .string()
    .regex(TENANT_ID_PATTERN, 'invalid tenant id')
    .optional()
    .describe(
      "the key's tenant; only a platform admin (admin of tenant *) may name another tenant than its own",
    ),
});
export type ApiKeyCreateRequest = z.infer<typeof apiKeyCreateRequestSchema>;

/** A key as listed: never the key itself. */
export interface ApiKeyView {
  id: string;
  tenantId: string;
  name: string;
  /** The visible part of the key: `aob_<prefix>_...`. */
  prefix: string;
  role: Role;
  scopes?: Permission[];
  expiresAt?: string;
  createdAt: string;
  createdBy: string;
  lastUsedAt?: string;
}

export interface CreatedApiKey extends ApiKeyView {
  /** Shown once. */
  key: string;
}

export interface ApiKeyPage {
  items: ApiKeyView[];
  /** Position after the last item when more follow. */
  next?: { createdAt: string; id: string };
}

export interface AuditContext {
  requestId?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Creating, listing and revoking stored API keys, with their audit trail. */
export class ApiKeyService {
  constructor(
    private readonly repo: ApiKeyRepository,
    private readonly verifier: ApiKeyVerifier,
    private readonly audit: AuditLog,
  ) {}

  /**
   * Mints a key for the caller's tenant (a platform admin may name another). A key never gets a
   * permission its creator lacks.
   * @throws DomainError Forbidden (escalation, other tenant), InvalidRequest (expiry in the past)
   */
  async create(
    actor: Principal,
    input: ApiKeyCreateRequest,
    ctx: AuditContext = {},
  ): Promise<CreatedApiKey> {
    const tenantId = input.tenantId ?? actor.tenantId;
    const deny = (
      message: string,
      permission: Permission,
      details: Record<string, unknown> = {},
    ) => {
      this.audit.record({
        ...this.actorOf(actor, ctx),
        action: 'api-key.create',
        resource: `tenant:${tenantId}`,
        decision: 'deny',
        reason: message,
        details: {
          role: input.role,
          ...(input.scopes ? { scopes: input.scopes } : {}),
          ...details,
        },
      });
      return new DomainError('Forbidden', message, { details: { permission, ...details } });
    };
    if (tenantId !== actor.tenantId && !actor.platformAdmin) {
      throw deny(
        'only a platform admin (admin of tenant *) may create keys for another tenant',
        'keys:manage',
      );
    }
    const missing = missingForGrant(actor, input.role, input.scopes);
    if (missing[0] !== undefined) {
      throw deny(
        `a key cannot have permissions its creator lacks: missing ${missing.join(', ')}`,
        missing[0],
        {
          missing,
        },
      );
    }
    const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
    if (expiresAt !== null && expiresAt.getTime() <= Date.now()) {
      throw new DomainError('InvalidRequest', 'expiresAt must be in the future', {
        details: { errors: [{ path: 'expiresAt', message: 'must be in the future' }] },
      });
    }
    const scopes = input.scopes === undefined ? null : [...new Set(input.scopes)];
    // the 32-bit prefix may collide with a live key's: draw again
    for (let attempt = 0; attempt < 5; attempt++) {
      const material = generateApiKey();
      const event = await this.repo.transaction(async (m) => {
        const inserted = await this.repo.insert(m, {
          id: material.id,
          tenantId,
          name: input.name,
          prefix: material.prefix,
          keyHash: material.hash,
          role: input.role,
          scopes,
          createdBy: actor.subject,
          expiresAt,
        });
        if (!inserted) return undefined;
        return this.audit.persist(
          {
            ...this.actorOf(actor, ctx),
            action: 'api-key.create',
            resource: `api-key:${material.id}`,
            decision: 'allow',
            details: {
              keyTenantId: tenantId,
              name: input.name,
              role: input.role,
              scopes,
              expiresAt,
            },
          },
          m,
        );
      });
      if (!event) continue;
      this.audit.announce(event);
      const record = await this.repo.findById(undefined, tenantId, material.id);
      if (!record) throw new Error(`API key ${material.id} vanished after its creation`);
      return { ...toView(record), key: material.key };
    }
    throw new DomainError('Unavailable', 'could not allocate a unique API key prefix; try again', {
      retryable: true,
    });
  }

  /** Live keys of the caller's tenant, newest first (a platform admin: every tenant, or `tenantId`). */
  async list(
    actor: Principal,
    q: { tenantId?: string; limit: number; after?: { createdAt: string; id: string } },
  ): Promise<ApiKeyPage> {
    let scope: TenantScope = actor.tenantId;
    if (actor.platformAdmin) scope = q.tenantId ?? ALL_TENANTS;
    else if (q.tenantId !== undefined && q.tenantId !== actor.tenantId) {
      throw new DomainError(
        'Forbidden',
        "only a platform admin (admin of tenant *) may list another tenant's keys",
        {
          details: { permission: 'keys:manage' },
        },
      );
    }
    const page = await this.repo.list(scope, {
      limit: q.limit,
      ...(q.after ? { after: q.after } : {}),
    });
    const last = page.items.at(-1);
    return {
      items: page.items.map(toView),
      ...(page.hasMore && last ? { next: { createdAt: last.cursorTs, id: last.id } } : {}),
    };
  }

  /**
   * Revokes a key at once: Postgres first, then this process' cache (other processes drop it
   * within their cache TTL).
   * @throws DomainError NotFound (unknown id, another tenant's key, already revoked)
   */
  async revoke(actor: Principal, id: string, ctx: AuditContext = {}): Promise<void> {
    const scope: TenantScope = actor.platformAdmin ? ALL_TENANTS : actor.tenantId;
    const resource = `api-key:${id}`;
    const event = UUID.test(id)
      ? await this.repo.transaction(async (m) => {
          const revoked = await this.repo.revoke(m, scope, id, actor.subject);
          if (!revoked) return undefined;
          return this.audit.persist(
            {
              ...this.actorOf(actor, ctx),
              action: 'api-key.revoke',
              resource,
              decision: 'allow',
              details: { keyTenantId: revoked.tenantId, name: revoked.name, role: revoked.role },
            },
            m,
          );
        })
      : undefined;
    if (!event) {
      // probing for other tenants' keys is worth knowing about
      this.audit.record({
        ...this.actorOf(actor, ctx),
        action: 'api-key.revoke',
        resource,
        decision: 'deny',
        reason: 'no such key in this tenant',
      });
      throw new DomainError('NotFound', 'API key not found');
    }
    this.verifier.forget(id);
    this.audit.announce(event);
  }

  private actorOf(actor: Principal, ctx: AuditContext) {
    return {
      actor: actor.subject,
      actorKind: actor.kind,
      tenantId: actor.tenantId,
      ...(ctx.requestId === undefined ? {} : { requestId: ctx.requestId }),
    };
  }
}

export function toView(r: ApiKeyRecord): ApiKeyView {
  return {
    id: r.id,
    tenantId: r.tenantId,
    name: r.name,
    prefix: r.prefix,
    role: r.role,
    ...(r.scopes === null ? {} : { scopes: r.scopes }),
    ...(r.expiresAt === null ? {} : { expiresAt: r.expiresAt.toISOString() }),
    createdAt: r.createdAt.toISOString(),
    createdBy: r.createdBy,
    ...(r.lastUsedAt === null ? {} : { lastUsedAt: r.lastUsedAt.toISOString() }),
  };
}
