import { isDomainError } from '@aob/errors';
import { parseChatCompletionRequest, requestedMaxTokens } from './chat-completion-request';
import { openAiFieldsOf } from './openai-errors';

const valid = { model: 'tier:fast', messages: [{ role: 'user', content: 'Hi' }] };

function rejection(body: unknown): { param: string | null | undefined; message: string } {
  try {
    parseChatCompletionRequest(body);
  } catch (err) {
    if (!isDomainError(err)) throw err;
    expect(err.code).toBe('InvalidRequest');
    return { param: openAiFieldsOf(err.details).param, message: err.message };
  }
  throw new Error('expected a rejection');
}

describe('parseChatCompletionRequest', () => {
  it('accepts what the OpenAI SDK sends for every role and drops fields it does not know', () => {
    const parsed = parseChatCompletionRequest({
      ...valid,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Really brief.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }], name: 'ann' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'weather', arguments: '{}' } },
          ],
        },
        { role: 'tool', content: 'sunny', tool_call_id: 'c1' },
        { role: 'assistant', content: 'Sunny.' },
      ],
      tools: [
        {
          type: 'function',
          function: { name: 'weather', parameters: { type: 'object', properties: {} } },
        },
      ],
      tool_choice: 'auto',
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      n: 1,
      max_tokens: null,
      some_future_field: { x: 1 },
    });
    expect(parsed.messages).toHaveLength(6);
    expect(parsed).not.toHaveProperty('some_future_field');
  });

  it('names the bad field in param', () => {
    expect(rejection({ ...valid, n: 2 })).toEqual({
      param: 'n',
      message: "Invalid 'n': n must be 1: this gateway returns one choice",
    });
    expect(rejection({ ...valid, messages: [{ role: 'robot', content: 'x' }] }).param).toBe(
      'messages[0].role',
    );
    expect(
      rejection({
        ...valid,
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] },
        ],
      }).param,
    ).toMatch(/^messages\[0\]\.content/);
    expect(rejection({ ...valid, messages: [] }).param).toBe('messages');
    expect(rejection({ ...valid, model: '' }).param).toBe('model');
    expect(rejection({ messages: valid.messages }).param).toBe('model');
    expect(rejection({ ...valid, temperature: 3 }).param).toBe('temperature');
    expect(rejection({ ...valid, max_tokens: 0 }).param).toBe('max_tokens');
    expect(rejection({ ...valid, messages: [{ role: 'tool', content: 'x' }] }).param).toBe(
      'messages[0].tool_call_id',
    );
    expect(rejection({ ...valid, messages: [{ role: 'assistant' }] }).param).toBe(
      'messages[0].content',
    );
  });

  it("refuses stream_options without stream, in OpenAI's words", () => {
    expect(rejection({ ...valid, stream_options: { include_usage: true } })).toEqual({
      param: 'stream_options',
      message:
        "Invalid 'stream_options': The 'stream_options' parameter is only allowed when 'stream' is enabled.",
    });
  });

  it('refuses a body that is not a JSON object', () => {
    for (const body of [undefined, null, 'text', [valid]]) expect(rejection(body).param).toBeNull();
  });

  it('takes max_completion_tokens over the older max_tokens', () => {
    expect(
      requestedMaxTokens(
        parseChatCompletionRequest({ ...valid, max_tokens: 10, max_completion_tokens: 5 }),
      ),
    ).toBe(5);
    expect(requestedMaxTokens(parseChatCompletionRequest({ ...valid, max_tokens: 10 }))).toBe(10);
    expect(requestedMaxTokens(parseChatCompletionRequest(valid))).toBeUndefined();
  });
});
