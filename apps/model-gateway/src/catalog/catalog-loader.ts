import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { type Catalog, catalogSchema } from './catalog.schema';

/**
 * The catalog shipped with the app. Resolved from this file's folder, not the working directory:
 * `src/catalog/` (tests) and `dist/catalog/` (the build) both sit two levels below the package.
 */
export const DEFAULT_CATALOG_PATH = path.resolve(__dirname, '..', '..', 'catalog', 'default.yaml');

export interface CatalogIssue {
  /** Where in the file, e.g. `deployments[1] (local-fast).tier`. */
  path: string;
  message: string;
}

export class CatalogError extends Error {
  override readonly name = 'CatalogError';

  constructor(
    message: string,
    readonly issues: readonly CatalogIssue[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Reads and validates a catalog file (YAML, or JSON when the name ends in `.json`). */
export function loadCatalog(file: string): Catalog {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CatalogError(`cannot read model catalog ${file}: ${(err as Error).message}`, [], {
      cause: err,
    });
  }
  return parseCatalog(text, {
    source: file,
    format: file.toLowerCase().endsWith('.json') ? 'json' : 'yaml',
  });
}

export interface ParseCatalogOptions {
  /** Named in error messages. @default 'catalog' */
  source?: string;
  /** @default 'yaml' (which also reads JSON, but with vaguer syntax errors) */
  format?: 'yaml' | 'json';
}

/** Validates catalog text; every problem is listed by its place in the file. */
export function parseCatalog(text: string, opts: ParseCatalogOptions = {}): Catalog {
  const source = opts.source ?? 'catalog';
  let raw: unknown;
  try {
    raw = opts.format === 'json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new CatalogError(
      `model catalog ${source} is not valid ${opts.format === 'json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      [],
      {
        cause: err,
      },
    );
  }
  return validateCatalog(raw, source);
}

/** Validates an already-parsed catalog object (tests, catalogs built in code). */
export function validateCatalog(raw: unknown, source = 'catalog'): Catalog {
  const result = catalogSchema.safeParse(raw);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({
    path: describePath(raw, i.path),
    message: i.message,
  }));
  const list = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n');
  throw new CatalogError(`invalid model catalog ${source}:\n${list}`, issues);
}

/** `['deployments', 1, 'tier']` → `deployments[1] (local-fast).tier`: the name helps find the entry. */
function describePath(raw: unknown, issuePath: z.core.$ZodIssue['path']): string {
  let out = '';
  issuePath.forEach((segment, index) => {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
    if (index === 1 && issuePath[0] === 'deployments' && typeof segment === 'number') {
      const name = deploymentName(raw, segment);
      if (name !== undefined) out += ` (${name})`;
    }
  });
  return out;
}

function deploymentName(raw: unknown, index: number): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const list = (raw as { deployments?: unknown }).deployments;
  if (!Array.isArray(list)) return undefined;
  const entry: unknown = list[index];
  if (typeof entry !== 'object' || entry === null) return undefined;
  const name = (entry as { name?: unknown }).name;
  return typeof name === 'string' && name !== '' ? name : undefined;
}
