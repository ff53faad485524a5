import { Inject, Injectable, Logger } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import type { Principal } from '@aob/auth';
import { TENANT_PATTERN } from '@aob/events';
import {
  defaultLimitsFromEnv,
  effectiveLimits,
  QuotaLimiter,
  QuotaRepository,
  type QuotaDecision,
  type QuotaLimits,
  type QuotaOverrides,
} from '@aob/quotas';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { RUNS_SCOPE } from './quota-admission.service';

/** GET /v1/quotas: limits (0 = unlimited) and what remains now (null = unlimited or unknown). */
export interface QuotasView extends QuotaLimits {
  remaining: { requests: number | null; tokens: number | null; budgetUsd: number | null };
}

@Injectable()
export class QuotasService {
  private readonly log = new Logger(QuotasService.name);
  private readonly defaults: QuotaLimits;

  constructor(
    private readonly limiter: QuotaLimiter,
    private readonly store: QuotaRepository,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.defaults = defaultLimitsFromEnv(config);
  }

  async view(tenantId: string): Promise<QuotasView> {
    const d = await this.limiter.peek(tenantId, RUNS_SCOPE);
    // Redis away: the limits still come from Postgres; what remains is unknown
    const limits = d.degraded
      ? effectiveLimits(this.defaults, await this.store.findOverrides(tenantId))
      : d.limits;
    return { ...limits, remaining: remainingOf(d) };
  }

  /** PUT /v1/tenants/:tenantId/quotas: an admin of that tenant, or a platform admin (tenant `*`). */
  async update(
    principal: Principal,
    tenantId: string,
    overrides: QuotaOverrides,
  ): Promise<QuotasView> {
    if (!TENANT_PATTERN.test(tenantId) || tenantId === '*') {
      throw new DomainError('InvalidRequest', 'tenantId is not a valid tenant id', {
        details: { tenantId },
      });
    }
    if (!principal.platformAdmin && principal.tenantId !== tenantId) {
      throw new DomainError(
        'Forbidden',
        `an admin of tenant ${principal.tenantId} may only set the quotas of that tenant`,
      );
    }
    await this.store.saveOverrides(tenantId, overrides, principal.subject);
    await this.limiter.invalidateLimits(tenantId).catch((err: Error) => {
      // every replica's cache expires within QUOTA_LIMITS_CACHE_SECONDS anyway
      this.log.warn(
        `quota cache of ${tenantId} not invalidated (${err.message}); the change applies when it expires`,
      );
    });
    return this.view(tenantId);
  }
}

function remainingOf(d: QuotaDecision): QuotasView['remaining'] {
  return {
    requests: d.requests?.remaining ?? null,
    tokens: d.tokens?.remaining ?? null,
    budgetUsd: d.budget ? Math.round(d.budget.remainingUsd * 1e6) / 1e6 : null,
  };
}
