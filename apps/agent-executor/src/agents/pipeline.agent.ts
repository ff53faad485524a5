import { DomainError } from '@aob/errors';
import { z } from 'zod';
import { defineAgent, type JsonValue } from './agent-definition';
import { PIPELINE_TOOLS, runPipelineTool } from './pipeline-tools';

const REFERENCE = /\{\{\s*steps\.([A-Za-z0-9_-]+)\s*\}\}/g;

const stepSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'step ids must match [A-Za-z0-9_-]{1,64}'),
    kind: z.enum(['llm', 'tool']),
    prompt: z.string().min(1).max(200_000).optional(),
    tool: z.string().optional(),
    args: z.record(z.string(), z.json()).optional(),
  })
  .strict();

export const pipelineInputSchema = z
  .object({ steps: z.array(stepSchema).min(1).max(100) })
  .strict()
  .superRefine((input, ctx) => {
    const seen = new Set<string>();
    input.steps.forEach((step, index) => {
      const at = (...path: (string | number)[]) => ['steps', index, ...path];
      if (seen.has(step.id))
        ctx.addIssue({ code: 'custom', path: at('id'), message: `duplicate step id "${step.id}"` });
      if (step.kind === 'llm' && step.prompt === undefined) {
        ctx.addIssue({ code: 'custom', path: at('prompt'), message: 'an llm step needs a prompt' });
      }
      if (step.kind === 'tool') {
        if (step.tool === undefined)
          ctx.addIssue({ code: 'custom', path: at('tool'), message: 'a tool step needs a tool' });
        else if (!PIPELINE_TOOLS.has(step.tool)) {
          ctx.addIssue({
            code: 'custom',
            path: at('tool'),
            message: `unknown tool "${step.tool}" (known: ${[...PIPELINE_TOOLS.keys()].join(', ')})`,
          });
        } else if (referencesIn(step.args).length === 0) {
          // Without references the args are final already: check them now rather than mid-run.
          const parsed = PIPELINE_TOOLS.get(step.tool)!.argsSchema.safeParse(step.args ?? {});
          for (const issue of parsed.error?.issues ?? []) {
            ctx.addIssue({
              code: 'custom',
              path: at('args', ...issue.path.map(String)),
              message: issue.message,
            });
          }
        }
      }
      for (const ref of [...referencesIn(step.prompt), ...referencesIn(step.args)]) {
        if (!seen.has(ref)) {
          ctx.addIssue({
            code: 'custom',
            path: at(),
            message: `{{steps.${ref}}} does not name an earlier step`,
          });
        }
      }
      seen.add(step.id);
    });
  });

export type PipelineInput = z.infer<typeof pipelineInputSchema>;

/**
 * Runs `llm` and `tool` steps in order, each checkpointed. `{{steps.<id>}}` in a prompt or in a
 * string argument becomes that earlier step's output (JSON text when it is not a string).
 */
export const pipelineAgent = defineAgent({
  name: 'pipeline',
  description: `Runs llm and tool steps in order, each checkpointed; {{steps.<id>}} inserts an earlier step's output. Tools: ${[...PIPELINE_TOOLS.keys()].join(', ')}.`,
  version: '1',
  inputSchema: pipelineInputSchema,
  async run(ctx, input) {
    const outputs: Record<string, JsonValue> = {};
    let last: JsonValue = null;
    for (const step of input.steps) {
      last = await ctx.step(step.id, async (): Promise<JsonValue> => {
        if (step.kind === 'llm') {
          const prompt = substitute(step.prompt ?? '', outputs);
          const completion = await ctx.model.chat({
            messages: [{ role: 'user', content: prompt }],
          });
          return completion.content;
        }
        return runPipelineTool(step.tool ?? '', substituteDeep(step.args ?? {}, outputs));
      });
      outputs[step.id] = last;
    }
    return { steps: outputs, last };
  },
});

function referencesIn(value: unknown): string[] {
  if (typeof value === 'string') return [...value.matchAll(REFERENCE)].map((m) => m[1] as string);
  if (Array.isArray(value)) return value.flatMap(referencesIn);
  if (value !== null && typeof value === 'object')
    return Object.values(value).flatMap(referencesIn);
  return [];
}

/** Replaces every `{{steps.<id>}}`; an id without output is a broken request, never retried. */
export function substitute(text: string, outputs: Readonly<Record<string, JsonValue>>): string {
  return text.replace(REFERENCE, (_, id: string) => {
    if (!Object.hasOwn(outputs, id))
      throw new DomainError('InvalidRequest', `{{steps.${id}}} refers to no earlier step`);
    const value = outputs[id];
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
}

function substituteDeep(value: JsonValue, outputs: Readonly<Record<string, JsonValue>>): JsonValue {
  if (typeof value === 'string') return substitute(value, outputs);
  if (Array.isArray(value)) return value.map((v) => substituteDeep(v, outputs));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteDeep(v, outputs)]),
    );
  }
  return value;
}
