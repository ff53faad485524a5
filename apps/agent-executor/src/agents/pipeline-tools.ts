import { DomainError } from '@aob/errors';
import { z } from 'zod';
import type { JsonValue } from './agent-definition';

/** A deterministic function a pipeline `tool` step can call. */
export interface PipelineTool<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  argsSchema: S;
  run(args: z.output<S>): JsonValue;
}

const defineTool = <S extends z.ZodType>(tool: PipelineTool<S>): PipelineTool<S> => tool;

const uppercase = defineTool({
  name: 'uppercase',
  description: 'args {text}: the text in upper case',
  argsSchema: z.object({ text: z.string() }).strict(),
  run: ({ text }) => text.toUpperCase(),
});

const concat = defineTool({
  name: 'concat',
  description: 'args {parts: string[], separator?}: the parts joined by separator (default "")',
  argsSchema: z
    .object({ parts: z.array(z.string()).min(1), separator: z.string().default('') })
    .strict(),
  run: ({ parts, separator }) => parts.join(separator),
});

const wordCount = defineTool({
  name: 'word_count',
  description: 'args {text}: the number of whitespace-separated words',
  argsSchema: z.object({ text: z.string() }).strict(),
  run: ({ text }) => text.split(/\s+/u).filter((w) => w !== '').length,
});

const jsonGet = defineTool({
  name: 'json_get',
  description:
    'args {json: JSON text or value, path: "a.b.0"}: the value at path, null when absent',
  argsSchema: z.object({ json: z.json(), path: z.string() }).strict(),
  run: ({ json, path }) => {
    let value: unknown = json;
    if (typeof json === 'string') {
      try {
        value = JSON.parse(json);
      } catch {
        throw new DomainError(
          'InvalidRequest',
          'json_get: "json" is a string but not valid JSON text',
        );
      }
    }
    for (const key of path === '' ? [] : path.split('.')) {
      if (Array.isArray(value) && /^\d+$/.test(key)) value = value[Number(key)];
      else if (
        value !== null &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        Object.hasOwn(value, key)
      ) {
        value = (value as Record<string, unknown>)[key];
      } else return null;
    }
    return (value ?? null) as JsonValue;
  },
});

const template = defineTool({
  name: 'template',
  description: 'args {template, vars}: the template with each {{name}} replaced by vars[name]',
  argsSchema: z
    .object({
      template: z.string(),
      vars: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    })
    .strict(),
  run: ({ template: text, vars }) =>
    text.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (_, name: string) => {
      const value = vars[name];
      if (value === undefined)
        throw new DomainError('InvalidRequest', `template: no value for {{${name}}}`);
      return String(value);
    }),
});

/** Built-in tools by name. */
export const PIPELINE_TOOLS: ReadonlyMap<string, PipelineTool> = new Map<string, PipelineTool>(
  [uppercase, concat, wordCount, jsonGet, template].map((t) => [t.name, t as PipelineTool]),
);

/** Validates `args` with the tool's schema and runs it; bad args are the request's fault (not retryable). */
export function runPipelineTool(name: string, args: unknown): JsonValue {
  const tool = PIPELINE_TOOLS.get(name);
  if (!tool) throw new DomainError('InvalidRequest', `unknown pipeline tool "${name}"`);
  const parsed = tool.argsSchema.safeParse(args ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new DomainError('InvalidRequest', `invalid args for tool ${name}: ${issues}`);
  }
  return tool.run(parsed.data);
}
