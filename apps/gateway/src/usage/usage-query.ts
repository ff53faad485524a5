import { z } from 'zod';

export const USAGE_GROUPS = ['model', 'deployment', 'agent', 'day'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

/** Longest range one request may cover (days, inclusive). */
const MAX_DAYS = 400;
const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` or an ISO 8601 date-time; only its UTC day counts (aggregates are daily). */
const day = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })], {
    error: 'must be an ISO date (YYYY-MM-DD) or date-time',
  })
  .transform((v) => new Date(v.length === 10 ? `${v}T00:00:00Z` : v).toISOString().slice(0, 10));

/** Query of `GET /v1/usage`: `from`/`to` are inclusive UTC days, default the current month up to today. */
export const usageQuerySchema = z
  .object({
    from: day.optional(),
    to: day.optional(),
    groupBy: z.enum(USAGE_GROUPS).default('day'),
  })
  .strict()
  .transform((q, ctx) => {
    const today = new Date().toISOString().slice(0, 10);
    const from = q.from ?? `${(q.to ?? today).slice(0, 7)}-01`;
    const to = q.to ?? today;
    if (from > to)
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'from must not be after to' });
    else if ((Date.parse(to) - Date.parse(from)) / DAY_MS + 1 > MAX_DAYS)
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: `the range may cover at most ${MAX_DAYS} days`,
      });
    return { from, to, groupBy: q.groupBy };
  });
export type UsageQuery = z.output<typeof usageQuerySchema>;
