import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTRACT_OPERATIONS } from '../../test/contract-operations';
import { buildOpenApiDocument } from './openapi-document';

const COMMITTED = join(__dirname, '..', '..', 'openapi.json');

describe('OpenAPI document', () => {
  const doc = buildOpenApiDocument();

  it('matches the committed apps/gateway/openapi.json (UPDATE_OPENAPI=1 rewrites it)', () => {
    // Formatted by the repository's Prettier (its CLI: Prettier 3's API needs ESM, which Jest lacks
    // here), so `npm run format:check` agrees with the committed file.
    const generated = execFileSync(
      process.execPath,
      [require.resolve('prettier/bin/prettier.cjs'), '--stdin-filepath', COMMITTED],
      {
        input: JSON.stringify(doc),
        encoding: 'utf8',
      },
    );
    if (process.env.UPDATE_OPENAPI === '1') writeFileSync(COMMITTED, generated);
    expect(readFileSync(COMMITTED, 'utf8')).toBe(generated);
  });

  it('is OpenAPI 3.1 with every contract route', () => {
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m} ${path}`),
    );
    expect(ops.sort()).toEqual([...CONTRACT_OPERATIONS].sort());
  });

  it('resolves every $ref to a component', () => {
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas;
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(10);
    for (const r of refs) {
      const target = /^"\$ref":"#\/components\/schemas\/([A-Za-z]+)"$/.exec(r);
      expect(target).not.toBeNull();
      expect(schemas[target![1]!]).toBeDefined();
    }
  });

  it('marks what is not served yet as planned', () => {
    const planned = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([, o]) => (o as Record<string, unknown>)['x-aob-status'] === 'planned')
        .map(([m]) => `${m} ${path}`),
    );
    expect(planned).toContain('get /v1/usage');
    expect(planned).not.toContain('post /v1/runs/{runId}/cancel');
    expect(planned).not.toContain('post /v1/runs');
  });

  it('generates the ExecuteRequest schema from the catalog zod schema', () => {
    const schemas = (doc.components as { schemas: Record<string, Record<string, unknown>> })
      .schemas;
    const exec = schemas.ExecuteRequest!;
    expect(exec.required).toEqual(['agent', 'input']);
    expect((exec.properties as Record<string, { pattern?: string }>).agent?.pattern).toBe(
      '^[a-z0-9][a-z0-9_-]{0,63}$',
    );
  });
});
