import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  ApiKeyService,
  apiKeyCreateRequestSchema,
  CurrentPrincipal,
  RequirePermission,
  type ApiKeyView,
  type AuditContext,
  type Principal,
} from '@aob/auth';
import { apiKeyListQuerySchema, assertKeyId, type ApiKeyCreatedResponse } from './api-key-http';
import { decodeCursor, encodeCursor } from '../common/page-cursor';
import { parseOrThrow } from '../common/validation';

/** `/v1/api-keys`: stored API keys of the caller's tenant (a platform admin: every tenant). */
@Controller('v1/api-keys')
export class ApiKeysController {
  constructor(@Inject(ApiKeyService) private readonly keys: ApiKeyService) {}

  @Post()
  @HttpCode(201)
  @RequirePermission('keys:manage')
  async create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ApiKeyCreatedResponse> {
    const input = parseOrThrow(apiKeyCreateRequestSchema, body, 'body');
    const created = await this.keys.create(principal, input, auditContext(req));
    // the only response that ever holds the key
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Location', `/v1/api-keys/${created.id}`);
    return created;
  }

  @Get()
  @RequirePermission('keys:manage')
  async list(
    @CurrentPrincipal() principal: Principal,
    @Query() query: Record<string, unknown>,
  ): Promise<{ items: ApiKeyView[]; nextCursor?: string }> {
    const q = parseOrThrow(apiKeyListQuerySchema, query, 'query');
    const page = await this.keys.list(principal, {
      limit: q.limit,
      ...(q.tenantId === undefined ? {} : { tenantId: q.tenantId }),
      ...(q.cursor === undefined ? {} : { after: decodeCursor(q.cursor) }),
    });
    return {
      items: page.items,
      ...(page.next ? { nextCursor: encodeCursor(page.next) } : {}),
    };
  }

  @Delete(':id')
  @HttpCode(204)
  @RequirePermission('keys:manage')
  async revoke(
    @CurrentPrincipal() principal: Principal,
    @Param('id') id: string,
    @Req() req: Request,
  ): Promise<void> {
    await this.keys.revoke(principal, assertKeyId(id), auditContext(req));
  }
}

function auditContext(req: Request): AuditContext {
  const id = (req as { id?: unknown }).id;
  return typeof id === 'string' ? { requestId: id } : {};
}
