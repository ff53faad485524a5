import type { z } from 'zod';
import { DomainError } from '@aob/errors';
import { ID_PATTERN } from '@aob/events';

export interface FieldError {
  path: string;
  message: string;
}

/** Cap on listed errors: a huge invalid body must not produce a huge answer. */
const MAX_ERRORS = 20;

/** Throws a 400 problem listing at most 20 `errors: [{path, message}]`. */
export function invalid(detail: string, errors: FieldError[]): DomainError {
  return new DomainError('InvalidRequest', detail, {
    details: { errors: errors.slice(0, MAX_ERRORS) },
  });
}

/** Parses `value` with a zod schema or throws a 400 problem naming every issue. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalid(
    `${what} is invalid`,
    result.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  );
}

/** Run and thread ids end up in SQL parameters, Redis keys and URLs: check them before any query. */
export function assertId(value: string, name: string): string {
  if (!ID_PATTERN.test(value)) {
    throw invalid(`${name} is not a valid id`, [
      { path: name, message: 'must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}' },
    ]);
  }
  return value;
}
