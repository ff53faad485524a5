import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CurrentPrincipal, type Principal, RequirePermission } from '@aob/auth';
import { requestStartedAt } from '../metrics/request-metrics.middleware';
import { ModelQuotaService } from '../quotas/model-quota.service';
import { ChatCompletionsService } from './chat-completions.service';
import { serveChatCompletion } from './serve-chat-completion';

/**
 * `POST /v1/chat/completions` through Nest's stack. Most requests never get here: the raw fast
 * path (chat-fast-path.ts) serves plain JSON bodies in front of express; this route takes the
 * rest (other content types, compressed bodies, ...) and answers the same way.
 */
@Controller('v1/chat/completions')
export class ChatCompletionsController {
  constructor(
    private readonly chat: ChatCompletionsService,
    private readonly quotas: ModelQuotaService,
  ) {}

  @Post()
  @HttpCode(200)
  @RequirePermission('models:invoke')
  async create(
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    await serveChatCompletion(this.chat, this.quotas, {
      body,
      principal,
      headers: req.headers,
      res,
      startedAt: requestStartedAt(req),
    });
  }
}
