import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CurrentPrincipal, type Principal, RequirePermission } from '@aob/auth';
import { requestStartedAt } from '../metrics/request-metrics.middleware';
import { parseChatCompletionRequest } from '../openai/chat-completion-request';
import { abortWhenClientLeaves, writeEventStream } from '../openai/event-stream';
import { ModelQuotaService } from '../quotas/model-quota.service';
import { callerFrom } from './caller';
import { ChatCompletionsService } from './chat-completions.service';
import { routeConstraintsFrom } from './route-constraints';

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
    const startedAt = requestStartedAt(req);
    const signal = abortWhenClientLeaves(res);
    const request = parseChatCompletionRequest(body);
    const caller = callerFrom(principal, req.headers);
    const constraints = routeConstraintsFrom(req.headers);
    const quota = await this.quotas.admit(caller.tenantId, request);
    // error answers after admission carry the tenant's limits too, as OpenAI's do
    res.set(quota.headers);
    const call = { body: request, caller, constraints, signal, startedAt, quota };
    try {
      if (request.stream) {
        const stream = await this.chat.stream(call);
        await writeEventStream(res, stream.headers, stream.chunks, signal);
      } else {
        const completion = await this.chat.complete(call);
        res.status(200).set(completion.headers).json(completion.body);
      }
    } finally {
      // the service settles with the real usage; this closes requests that failed before
      // reaching an upstream (unknown model, context too long), and is a no-op otherwise
      call.quota.settle(0);
    }
  }
}
