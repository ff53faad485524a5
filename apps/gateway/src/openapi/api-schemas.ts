import { z } from 'zod';
import {
  agentNameSchema,
  executeRequestSchema,
  idSchema,
  runCancelledSchema,
  runErrorSchema,
  runFailureSchema,
  runResultSchema,
  tenantIdSchema,
  usageSchema,
} from '@aob/events';
import { apiKeyCreateRequestSchema, PERMISSIONS, ROLES } from '@aob/auth';
import { RUN_STATUSES } from '@aob/persistence';

/**
 * Zod schemas of the HTTP API's bodies (CONTRACT.md section 6), the source of /openapi.json.
 * Request bodies reuse the event catalog's schemas; responses are described here.
 */
const isoDateTime = z.iso.datetime({ offset: true });
const json = () => z.json();

export const problemSchema = z
  .object({
    type: z.string().describe('URI of the problem type'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: z.string().describe('stable machine-readable code'),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('validation errors (400)'),
  })
  .describe('RFC 9457 problem details (application/problem+json)');

export const runCancelSchema = z
  .object({
    reason: z
      .string()
      .min(1)
      .max(1_000)
      .optional()
      .describe('why; carried on the cancelled event (default "cancelled through the API")'),
  })
  .strict();
export const runCancelAcceptedSchema = z.object({
  runId: z.string(),
  status: z
    .enum(['queued', 'running', 'cancelled'])
    .describe(
      '`cancelled` when the run ended at once (never handed to a worker, or cancelled before); else its current status until the executor stops it',
    ),
});
export const runAcceptedSchema = z.object({ runId: idSchema, status: z.literal('queued') });

export const runSchema = z.object({
  runId: idSchema,
  tenantId: tenantIdSchema,
  agent: agentNameSchema,
  status: z.enum(RUN_STATUSES),
  threadId: idSchema,
  input: json().describe('null for runs submitted straight to the bus'),
  output: json().optional().describe('when completed'),
  error: runErrorSchema
    .extend({ deadLettered: z.boolean().optional() })
    .optional()
    .describe('when failed or cancelled'),
  usage: usageSchema.optional(),
  attempts: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative().optional(),
  createdAt: isoDateTime,
  updatedAt: isoDateTime,
});

const listOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z.string().optional().describe('pass as `cursor` for the next page'),
  });

export const runListSchema = listOf(runSchema);

export const sseStatusDataSchema = z.object({
  status: z.enum(RUN_STATUSES),
  attempt: z.number().int().nonnegative(),
});
export const sseTokenDataSchema = z.object({ text: z.string() });
export const sseStepDataSchema = z.object({
  step: z.number().int().positive(),
  id: z.string().optional(),
  output: json().optional(),
});
export const sseCancelledDataSchema = runCancelledSchema.pick({ runId: true, reason: true });

export const threadHistoryItemSchema = z.object({
  checkpointId: z.string(),
  runId: idSchema,
  step: z.number().int().positive().describe('counts from 1 within a run'),
  stepId: z.string().optional(),
  createdAt: isoDateTime,
  state: json().optional(),
});
export const threadHistorySchema = listOf(threadHistoryItemSchema);

export const agentSchema = z.object({
  name: agentNameSchema,
  description: z.string(),
  version: z.string(),
  inputSchema: z.record(z.string(), json()).describe('JSON Schema (2020-12) of `input`'),
});
export const agentListSchema = z.object({ items: z.array(agentSchema) });

export const usageItemSchema = z.object({
  model: z.string().optional(),
  deployment: z.string().optional(),
  agent: z.string().optional(),
  day: z.string().optional(),
  requests: z.number().int().nonnegative(),
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  totalTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
});
export const usageListSchema = listOf(usageItemSchema);

export const quotaLimitsSchema = z.object({
  requestsPerSecond: z.number().nonnegative(),
  burst: z.number().int().nonnegative(),
  tokensPerMinute: z.number().int().nonnegative(),
  monthlyBudgetUsd: z.number().nonnegative(),
});
export const quotasSchema = quotaLimitsSchema.extend({
  remaining: z.object({ requests: z.number(), tokens: z.number(), budgetUsd: z.number() }),
});

/** The request body is the schema libs/auth validates with. */
export const apiKeyCreateSchema = apiKeyCreateRequestSchema;
export const apiKeySchema = z.object({
  id: z.uuid(),
  tenantId: tenantIdSchema,
  name: z.string(),
  prefix: z.string().describe('the visible part of the key: aob_<prefix>_...'),
  role: z.enum(ROLES),
  scopes: z.array(z.enum(PERMISSIONS)).optional(),
  expiresAt: isoDateTime.optional(),
  createdAt: isoDateTime,
  createdBy: z.string().describe('subject of the creator'),
  lastUsedAt: isoDateTime.optional().describe('updated at most once a minute'),
});
export const apiKeyCreatedSchema = apiKeySchema.extend({
  key: z.string().describe('aob_<prefix>_<secret>: shown once, never again'),
});
export const apiKeyListSchema = listOf(apiKeySchema);

export const deadLetterSchema = z.object({
  id: z.string(),
  tenantId: tenantIdSchema
    .nullable()
    .describe('null when the message named no tenant (not a CloudEvent): platform admins only'),
  subject: z.string().describe('the original NATS subject'),
  eventId: z.string().nullable().describe('CloudEvent id; null when not a CloudEvent'),
  type: z.string().nullable().describe('CloudEvent type; null when not a CloudEvent'),
  reason: z.string(),
  code: z.string().optional().describe('the failure code the consumer recorded'),
  deliveries: z.number().int().nonnegative(),
  replays: z.number().int().nonnegative(),
  status: z.enum(['quarantined', 'parked', 'replayed', 'discarded']),
  firstFailedAt: isoDateTime,
  lastFailedAt: isoDateTime,
  quarantineUntil: isoDateTime.optional(),
  lastReplayedAt: isoDateTime.optional(),
});
export const deadLetterListSchema = listOf(deadLetterSchema);
export const deadLetterReplayFilterSchema = z.object({
  status: z.enum(['quarantined', 'parked', 'replayed', 'discarded']).optional(),
  subject: z.string().optional(),
  ids: z.array(z.uuid()).min(1).max(1_000).optional(),
});
export const deadLetterReplayResultSchema = z.object({ replayed: z.number().int().nonnegative() });

/** Component name -> schema. Order is the order in the document. */
export const API_SCHEMAS = {
  Problem: problemSchema,
  ExecuteRequest: executeRequestSchema,
  RunAccepted: runAcceptedSchema,
  RunCancel: runCancelSchema,
  RunCancelAccepted: runCancelAcceptedSchema,
  Run: runSchema,
  RunList: runListSchema,
  RunStatusEventData: sseStatusDataSchema,
  RunTokenEventData: sseTokenDataSchema,
  RunStepEventData: sseStepDataSchema,
  RunResult: runResultSchema,
  RunFailure: runFailureSchema,
  RunCancelledEventData: sseCancelledDataSchema,
  ThreadHistoryItem: threadHistoryItemSchema,
  ThreadHistory: threadHistorySchema,
  Agent: agentSchema,
  AgentList: agentListSchema,
  UsageItem: usageItemSchema,
  UsageList: usageListSchema,
  QuotaLimits: quotaLimitsSchema,
  Quotas: quotasSchema,
  ApiKeyCreate: apiKeyCreateSchema,
  ApiKey: apiKeySchema,
  ApiKeyCreated: apiKeyCreatedSchema,
  ApiKeyList: apiKeyListSchema,
  DeadLetter: deadLetterSchema,
  DeadLetterList: deadLetterListSchema,
  DeadLetterReplayFilter: deadLetterReplayFilterSchema,
  DeadLetterReplayResult: deadLetterReplayResultSchema,
} as const;

export type ApiSchemaName = keyof typeof API_SCHEMAS;
