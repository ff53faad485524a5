import { z } from 'zod';
import type { ChatMessage } from '../model/model-client';
import { defineAgent } from './agent-definition';

const messageSchema = z
  .object({
    role: z.enum(['system', 'user', 'assistant']),
    content: z.string().max(1_000_000),
  })
  .strict();

export const chatInputSchema = z.union([
  z
    .object({ messages: z.array(messageSchema).min(1).max(1_000), system: z.string().optional() })
    .strict(),
  z.object({ prompt: z.string().min(1).max(1_000_000), system: z.string().optional() }).strict(),
]);

export type ChatInput = z.infer<typeof chatInputSchema>;

/** Older messages of a long thread are dropped from the state (the checkpoint row stays bounded). */
const MAX_THREAD_MESSAGES = 200;

/** What a chat run leaves in its checkpoint: the conversation so far, for runs continuing the thread. */
const chatStateSchema = z.object({ messages: z.array(messageSchema) });

/**
 * One completion through the model gateway, tokens streamed to the run's stream. A run with the
 * `threadId` of an earlier chat run continues that conversation.
 */
export const chatAgent = defineAgent({
  name: 'chat',
  description:
    'One chat completion through the model gateway, streamed token by token. Input {messages, system?} or {prompt}.',
  version: '1',
  inputSchema: chatInputSchema,
  async run(ctx, input) {
    return ctx.step('completion', async () => {
      const history = chatStateSchema.safeParse(ctx.threadState).data?.messages ?? [];
      const asked: ChatMessage[] =
        'prompt' in input ? [{ role: 'user', content: input.prompt }] : input.messages;
      const system: ChatMessage[] =
        input.system === undefined ? [] : [{ role: 'system', content: input.system }];
      // A system message from an earlier run stays only when this run does not bring its own.
      const earlier = system.length > 0 ? history.filter((m) => m.role !== 'system') : history;
      const completion = await ctx.model.chat({ messages: [...system, ...earlier, ...asked] });
      const conversation: ChatMessage[] = [
        ...system,
        ...earlier,
        ...asked,
        { role: 'assistant', content: completion.content },
      ];
      ctx.setState({ messages: conversation.slice(-MAX_THREAD_MESSAGES) });
      return { content: completion.content, model: completion.model };
    });
  },
});
