import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Principal } from '@aob/auth';
import { parseChatCompletionRequest } from '../openai/chat-completion-request';
import { abortWhenClientLeaves, writeEventStream } from '../openai/event-stream';
import { writeJson } from '../openai/openai-exception.filter';
import type { ModelQuotaService } from '../quotas/model-quota.service';
import { callerFrom } from './caller';
import type { ChatCompletionsService } from './chat-completions.service';
import { routeConstraintsFrom } from './route-constraints';

/** One authenticated `POST /v1/chat/completions`, its JSON body parsed. */
export interface ChatCompletionExchange {
  body: unknown;
  principal: Principal;
  headers: IncomingHttpHeaders;
  res: ServerResponse;
  /** When the gateway took the request (performance.now()): the start of `x-aob-overhead-ms`. */
  startedAt: number;
}

/**
 * Serves one chat completion onto `res`: validation, quota admission, the completion (streamed or
 * not) and its settlement. The Nest controller and the raw fast path (chat-fast-path.ts) both
 * call it, so they answer alike.
 * @throws anything that should become an OpenAI error answer (see sendOpenAiError); the quota
 *   headers already set on `res` stay on it
 */
export async function serveChatCompletion(
  chat: ChatCompletionsService,
  quotas: ModelQuotaService,
  x: ChatCompletionExchange,
): Promise<void> {
  const { res, startedAt } = x;
  const signal = abortWhenClientLeaves(res);
  const request = parseChatCompletionRequest(x.body);
  const caller = callerFrom(x.principal, x.headers);
  const constraints = routeConstraintsFrom(x.headers);
  const quota = await quotas.admit(caller.tenantId, request);
  // error answers after admission carry the tenant's limits too, as OpenAI's do
  for (const name in quota.headers) res.setHeader(name, quota.headers[name] as string);
  const call = { body: request, caller, constraints, signal, startedAt, quota };
  try {
    if (request.stream) {
      const stream = await chat.stream(call);
      await writeEventStream(res, stream.headers, stream.chunks, signal);
    } else {
      const completion = await chat.complete(call);
      for (const name in completion.headers) {
        res.setHeader(name, completion.headers[name] as string);
      }
      writeJson(res, 200, completion.body);
    }
  } finally {
    // the service settles with the real usage; this closes requests that failed before
    // reaching an upstream (unknown model, context too long), and is a no-op otherwise
    call.quota.settle(0);
  }
}
