import { chatAgent } from './chat.agent';
import { FakeAgentContext } from './fake-agent-context';

describe('chat agent', () => {
  it('sends a prompt as one user message and streams the answer', async () => {
    const ctx = new FakeAgentContext(() => 'hello there friend');
    const output = await chatAgent.run(
      ctx,
      chatAgent.inputSchema.parse({ prompt: 'hi', system: 'be brief' }),
    );
    expect(output).toEqual({ content: 'hello there friend', model: 'fake-model' });
    expect(ctx.modelCalls).toEqual([
      [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
    ]);
    expect(ctx.tokens.join('')).toBe('hello there friend');
  });

  it('continues the conversation of its thread', async () => {
    const ctx = new FakeAgentContext(() => 'second answer');
    ctx.threadState = {
      messages: [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
      ],
    };
    await chatAgent.run(
      ctx,
      chatAgent.inputSchema.parse({ messages: [{ role: 'user', content: 'second question' }] }),
    );
    expect(ctx.modelCalls[0]?.map((m) => m.content)).toEqual([
      'first question',
      'first answer',
      'second question',
    ]);
    expect(ctx.state).toEqual({
      messages: [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'second question' },
        { role: 'assistant', content: 'second answer' },
      ],
    });
  });

  it('accepts exactly the two contract shapes', () => {
    const ok = (v: unknown) => chatAgent.inputSchema.safeParse(v).success;
    expect(ok({ prompt: 'x' })).toBe(true);
    expect(ok({ messages: [{ role: 'user', content: 'x' }], system: 's' })).toBe(true);
    expect(ok({ messages: [] })).toBe(false);
    expect(ok({ prompt: '' })).toBe(false);
    expect(ok({ messages: [{ role: 'tool', content: 'x' }] })).toBe(false);
    expect(ok({ prompt: 'x', messages: [{ role: 'user', content: 'x' }] })).toBe(false);
  });
});
