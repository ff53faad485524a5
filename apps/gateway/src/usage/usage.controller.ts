import { Controller, Get, Query } from '@nestjs/common';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { parseOrThrow } from '../common/validation';
import { usageQuerySchema } from './usage-query';
import { UsageService, type UsageReport } from './usage.service';

@Controller('v1/usage')
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  @RequirePermission('usage:read')
  get(
    @CurrentPrincipal() principal: Principal,
    @Query() query: Record<string, unknown>,
  ): Promise<UsageReport> {
    return this.usage.report(principal.tenantId, parseOrThrow(usageQuerySchema, query, 'query'));
  }
}
