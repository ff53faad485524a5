import fc from 'fast-check';
import { encode } from 'gpt-tokenizer/model/gpt-4o';
import { parseChatCompletionRequest } from '../openai/chat-completion-request';
import { countPromptTokens, countTextTokens, tokenPieces } from './token-counter';

const messages = (body: unknown[]) =>
  parseChatCompletionRequest({ model: 'm', messages: body }).messages;

describe('token counting (o200k_base)', () => {
  it('counts prompts as OpenAI bills them: content, 3 per message, 3 to prime the reply', () => {
    // OpenAI reports prompt_tokens 8 for gpt-4o and [{user: "Hello"}]: user(1) + Hello(1) + 3 + 3
    expect(countPromptTokens(messages([{ role: 'user', content: 'Hello' }]))).toBe(8);
    const two = messages([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hello' },
    ]);
    expect(countPromptTokens(two)).toBe(8 + 1 + encode('You are terse.').length + 3);
  });

  it('counts text parts like the same string, and names, tool calls and tool definitions on top', () => {
    const plain = countPromptTokens(messages([{ role: 'user', content: 'Hello there' }]));
    expect(
      countPromptTokens(
        messages([
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Hello' },
              { type: 'text', text: ' there' },
            ],
          },
        ]),
      ),
    ).toBe(plain);
    expect(
      countPromptTokens(messages([{ role: 'user', content: 'Hello there', name: 'ann' }])),
    ).toBeGreaterThan(plain);
    const withCall = messages([
      { role: 'user', content: 'Hello there' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'c', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } },
        ],
      },
    ]);
    expect(countPromptTokens(withCall)).toBeGreaterThan(plain + 3);
    const tools = parseChatCompletionRequest({
      model: 'm',
      messages: [{ role: 'user', content: 'Hello there' }],
      tools: [
        {
          type: 'function',
          function: {
            name: 'lookup',
            description: 'Find',
            parameters: { type: 'object', properties: { q: { type: 'string' } } },
          },
        },
      ],
    }).tools;
    expect(
      countPromptTokens(messages([{ role: 'user', content: 'Hello there' }]), tools),
    ).toBeGreaterThan(plain + 9);
  });

  it('splits any text into per-token pieces that join back to it', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (text) => {
        const pieces = tokenPieces(text);
        expect(pieces.join('')).toBe(text);
        expect(pieces.length).toBeLessThanOrEqual(countTextTokens(text));
      }),
      { numRuns: 200 },
    );
    expect(tokenPieces('Hello world.')).toEqual(['Hello', ' world', '.']);
    expect(countTextTokens('')).toBe(0);
  });
});
