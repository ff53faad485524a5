import { isDomainError } from '@aob/errors';
import { FakeAgentContext } from './fake-agent-context';
import { pipelineAgent, substitute } from './pipeline.agent';
import { runPipelineTool } from './pipeline-tools';

const issuesOf = (raw: unknown) => {
  const r = pipelineAgent.inputSchema.safeParse(raw);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('pipeline input', () => {
  it('accepts llm and tool steps that refer to earlier steps', () => {
    expect(
      issuesOf({
        steps: [
          { id: 'a', kind: 'llm', prompt: 'hi' },
          { id: 'b', kind: 'tool', tool: 'uppercase', args: { text: '{{steps.a}}' } },
        ],
      }),
    ).toEqual([]);
  });

  it.each([
    [{ steps: [] }, /at least|>=1|too small/i],
    [
      {
        steps: [
          { id: 'a', kind: 'llm', prompt: 'x' },
          { id: 'a', kind: 'llm', prompt: 'y' },
        ],
      },
      /duplicate step id "a"/,
    ],
    [{ steps: [{ id: 'a', kind: 'llm' }] }, /needs a prompt/],
    [{ steps: [{ id: 'a', kind: 'tool' }] }, /needs a tool/],
    [{ steps: [{ id: 'a', kind: 'tool', tool: 'rm_rf', args: {} }] }, /unknown tool "rm_rf"/],
    [
      {
        steps: [
          { id: 'a', kind: 'llm', prompt: '{{steps.b}}' },
          { id: 'b', kind: 'llm', prompt: 'x' },
        ],
      },
      /does not name an earlier step/,
    ],
    [{ steps: [{ id: 'a', kind: 'tool', tool: 'uppercase', args: { text: 5 } }] }, /string/],
    [{ steps: [{ id: 'a b', kind: 'llm', prompt: 'x' }] }, /step ids must match/],
  ])('rejects %j', (raw, message) => {
    expect(issuesOf(raw).join('\n')).toMatch(message);
  });
});

describe('pipeline run', () => {
  it('runs the steps in order and substitutes earlier outputs', async () => {
    const ctx = new FakeAgentContext((messages) => `answer to ${messages.at(-1)?.content}`);
    const input = pipelineAgent.inputSchema.parse({
      steps: [
        { id: 'ask', kind: 'llm', prompt: 'name a colour' },
        { id: 'loud', kind: 'tool', tool: 'uppercase', args: { text: '{{steps.ask}}' } },
        { id: 'count', kind: 'tool', tool: 'word_count', args: { text: '{{steps.loud}}' } },
        {
          id: 'both',
          kind: 'tool',
          tool: 'concat',
          args: { parts: ['{{steps.count}}', '{{steps.loud}}'], separator: ' / ' },
        },
        { id: 'again', kind: 'llm', prompt: 'count was {{steps.count}}' },
      ],
    });
    const output = await pipelineAgent.run(ctx, input);
    expect(output).toEqual({
      steps: {
        ask: 'answer to name a colour',
        loud: 'ANSWER TO NAME A COLOUR',
        count: 5,
        both: '5 / ANSWER TO NAME A COLOUR',
        again: 'answer to count was 5',
      },
      last: 'answer to count was 5',
    });
    expect(ctx.executedSteps).toEqual(['ask', 'loud', 'count', 'both', 'again']);
    expect(ctx.usage.totalTokens).toBe(10);
    expect(ctx.tokens.join('')).toBe('answer to name a colouranswer to count was 5');
  });

  it('does not run checkpointed steps again after a redelivery', async () => {
    let calls = 0;
    const ctx = new FakeAgentContext(() => `call ${++calls}`);
    const input = pipelineAgent.inputSchema.parse({
      steps: [
        { id: 'one', kind: 'llm', prompt: 'a' },
        { id: 'two', kind: 'tool', tool: 'json_get', args: { json: '{"a":[1,2]}', path: 'a.1' } },
      ],
    });
    await pipelineAgent.run(ctx, input);
    ctx.redeliver();
    await expect(pipelineAgent.run(ctx, input)).resolves.toEqual({
      steps: { one: 'call 1', two: 2 },
      last: 2,
    });
    expect(calls).toBe(1);
  });

  it('stringifies non-string outputs and refuses unknown references', () => {
    expect(substitute('n={{steps.a}} o={{ steps.b }}', { a: 3, b: { x: [1] } })).toBe(
      'n=3 o={"x":[1]}',
    );
    const err: unknown = (() => {
      try {
        return substitute('{{steps.zzz}}', {});
      } catch (e) {
        return e;
      }
    })();
    expect(isDomainError(err) && err.code === 'InvalidRequest' && !err.retryable).toBe(true);
  });
});

describe('pipeline tools', () => {
  it.each([
    ['uppercase', { text: 'abc' }, 'ABC'],
    ['concat', { parts: ['a', 'b'] }, 'ab'],
    ['concat', { parts: ['a', 'b'], separator: '-' }, 'a-b'],
    ['word_count', { text: '  one two\nthree ' }, 3],
    ['word_count', { text: '' }, 0],
    ['json_get', { json: { a: { b: [10, 20] } }, path: 'a.b.1' }, 20],
    ['json_get', { json: '{"a":1}', path: 'missing.deeper' }, null],
    ['json_get', { json: '[1,2]', path: '' }, [1, 2]],
    ['template', { template: 'Hi {{name}}, {{n}}!', vars: { name: 'Ada', n: 2 } }, 'Hi Ada, 2!'],
  ])('%s(%j) = %j', (tool, args, expected) => {
    expect(runPipelineTool(tool, args)).toEqual(expected);
  });

  it.each([
    ['json_get', { json: '{nope', path: 'a' }, /not valid JSON/],
    ['template', { template: '{{who}}', vars: {} }, /no value for \{\{who\}\}/],
    ['uppercase', { text: 1 }, /invalid args for tool uppercase/],
    ['nope', {}, /unknown pipeline tool/],
  ])('%s(%j) fails non-retryably', (tool, args, message) => {
    let err: unknown;
    try {
      runPipelineTool(tool, args);
    } catch (e) {
      err = e;
    }
    expect(isDomainError(err) && !err.retryable).toBe(true);
    expect((err as Error).message).toMatch(message);
  });
});
