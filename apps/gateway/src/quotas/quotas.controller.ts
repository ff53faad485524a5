import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { quotaOverridesSchema } from '@aob/quotas';
import { parseOrThrow } from '../common/validation';
import { QuotasService, type QuotasView } from './quotas.service';

@Controller('v1')
export class QuotasController {
  constructor(private readonly quotas: QuotasService) {}

  @Get('quotas')
  @RequirePermission('usage:read')
  get(@CurrentPrincipal() principal: Principal): Promise<QuotasView> {
    return this.quotas.view(principal.tenantId);
  }

  @Put('tenants/:tenantId/quotas')
  @RequirePermission('quotas:manage')
  put(
    @CurrentPrincipal() principal: Principal,
    @Param('tenantId') tenantId: string,
    @Body() body: unknown,
  ): Promise<QuotasView> {
    return this.quotas.update(
      principal,
      tenantId,
      parseOrThrow(quotaOverridesSchema, body, 'request body'),
    );
  }
}
