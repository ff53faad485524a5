import { z } from 'zod';
import { invalidParam } from './openai-errors';

/**
 * The subset of OpenAI's `POST /v1/chat/completions` body this gateway understands. Fields it does
 * not know are dropped rather than refused, so newer SDKs keep working; known fields are checked
 * the way OpenAI checks them and a bad one answers 400 naming it in `param`.
 */

const textPart = z.object({
  type: z.literal('text', { error: 'only text content parts are supported' }),
  text: z.string(),
});
const refusalPart = z.object({ type: z.literal('refusal'), refusal: z.string() });

/** A string, or an array of text parts (images, audio and files are not supported). */
const textContent = z.union([z.string(), z.array(textPart).min(1)], {
  error: 'content must be a string or an array of text parts',
});

const toolCall = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

const name = z.string().min(1).max(256).optional();

const systemMessage = z.object({ role: z.literal('system'), content: textContent, name });
const developerMessage = z.object({ role: z.literal('developer'), content: textContent, name });
const userMessage = z.object({ role: z.literal('user'), content: textContent, name });
const assistantMessage = z
  .object({
    role: z.literal('assistant'),
    content: z.union([z.string(), z.array(z.union([textPart, refusalPart])).min(1)]).nullish(),
    name,
    refusal: z.string().nullish(),
    tool_calls: z.array(toolCall).optional(),
  })
  .refine(
    (m) => (m.content !== undefined && m.content !== null) || (m.tool_calls?.length ?? 0) > 0,
    {
      message: 'an assistant message needs content or tool_calls',
      path: ['content'],
    },
  );
const toolMessage = z.object({
  role: z.literal('tool'),
  content: textContent,
  tool_call_id: z.string().min(1),
});

export const chatMessageSchema = z.discriminatedUnion(
  'role',
  [systemMessage, developerMessage, userMessage, assistantMessage, toolMessage],
  { error: "role must be one of 'system', 'developer', 'user', 'assistant', 'tool'" },
);
export type ChatMessage = z.infer<typeof chatMessageSchema>;

const functionTool = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'function names must match [A-Za-z0-9_-]{1,64}'),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});
export type FunctionTool = z.infer<typeof functionTool>;

const tokenLimit = z.number().int().positive().max(1_000_000).nullish();

export const chatCompletionRequestSchema = z
  .object({
    model: z.string().min(1, 'model is required').max(256),
    messages: z
      .array(chatMessageSchema)
      .min(1, 'messages must contain at least one message')
      .max(4_096),
    max_tokens: tokenLimit,
    max_completion_tokens: tokenLimit,
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().min(0).max(1).nullish(),
    n: z.literal(1, { error: 'n must be 1: this gateway returns one choice' }).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
    stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
    seed: z.number().int().nullish(),
    presence_penalty: z.number().min(-2).max(2).nullish(),
    frequency_penalty: z.number().min(-2).max(2).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    tools: z.array(functionTool).max(128).optional(),
    tool_choice: z
      .union([
        z.enum(['none', 'auto', 'required']),
        z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }),
      ])
      .optional(),
    parallel_tool_calls: z.boolean().optional(),
    response_format: z.object({ type: z.string() }).loose().optional(),
    user: z.string().max(256).optional(),
    metadata: z.record(z.string(), z.string()).nullish(),
  })
  .superRefine((body, ctx) => {
    if (body.stream_options != null && body.stream !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['stream_options'],
        message: "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      });
    }
  });

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/**
 * Validates a request body.
 * @throws DomainError InvalidRequest (400) whose `param` names the first bad field
 */
export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParam(
      null,
      'The request body must be a JSON object (Content-Type: application/json).',
    );
  }
  const result = chatCompletionRequestSchema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue ? formatParam(issue.path) : null;
  const message = issue ? issue.message : 'invalid request';
  throw invalidParam(param || null, param ? `Invalid '${param}': ${message}` : message);
}

/** The completion token cap the client asked for, if any (`max_completion_tokens` wins). */
export function requestedMaxTokens(req: ChatCompletionRequest): number | undefined {
  return req.max_completion_tokens ?? req.max_tokens ?? undefined;
}

/** `['messages', 0, 'role']` → `messages[0].role`, the way OpenAI names params. */
function formatParam(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, seg) => {
    if (typeof seg === 'number') return `${out}[${seg}]`;
    return out === '' ? String(seg) : `${out}.${String(seg)}`;
  }, '');
}
