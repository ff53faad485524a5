import { z } from 'zod';
import { agentNameSchema } from '@aob/events';
import { RUN_STATUSES } from '@aob/persistence';

/** `limit` and `cursor` of every list route. */
export const pageQuerySchema = z.object({
  limit: z
    .string()
    .regex(/^\d{1,3}$/, 'limit must be an integer from 1 to 100')
    .transform(Number)
    .pipe(z.number().int().min(1, 'limit must be at least 1').max(100, 'limit must be at most 100'))
    .optional()
    .default(20),
  cursor: z.string().min(1).max(512).optional(),
});

export const runListQuerySchema = pageQuerySchema.extend({
  status: z.enum(RUN_STATUSES).optional(),
  agent: agentNameSchema.optional(),
});
export type RunListQueryInput = z.infer<typeof runListQuerySchema>;
