import { z } from 'zod';

/** Agent names double as NATS subject tokens: keep them to this pattern. */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Run, thread and event ids end up in subjects, keys and URLs. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const TENANT_PATTERN = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;

export const agentNameSchema = z
  .string()
  .regex(AGENT_NAME_PATTERN, 'agent must match [a-z0-9][a-z0-9_-]{0,63}');
export const idSchema = z
  .string()
  .regex(ID_PATTERN, 'ids must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
export const tenantIdSchema = z.string().regex(TENANT_PATTERN, 'invalid tenant id');

export const runOptionsSchema = z
  .object({
    model: z.string().min(1).max(200).optional(),
    tier: z.enum(['fast', 'balanced', 'quality']).optional(),
    maxTokens: z.number().int().positive().max(1_000_000).optional(),
    temperature: z.number().min(0).max(2).optional(),
    timeoutMs: z.number().int().positive().max(86_400_000).optional(),
  })
  .strict();

export const executeRequestSchema = z.object({
  agent: agentNameSchema,
  input: z.json(),
  runId: idSchema.optional(),
  threadId: idSchema.optional(),
  options: runOptionsSchema.optional(),
});
export type ExecuteRequest = z.infer<typeof executeRequestSchema>;

export const usageSchema = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  totalTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
});
export type Usage = z.infer<typeof usageSchema>;

export const runStartedSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema,
  threadId: idSchema,
  attempt: z.number().int().positive(),
});
export type RunStarted = z.infer<typeof runStartedSchema>;

export const runResultSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema,
  threadId: idSchema,
  output: z.json(),
  usage: usageSchema,
  attempts: z.number().int().positive(),
  durationMs: z.number().nonnegative(),
});
export type RunResult = z.infer<typeof runResultSchema>;

export const runErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
});
export type RunError = z.infer<typeof runErrorSchema>;

export const runFailureSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema,
  threadId: idSchema,
  error: runErrorSchema,
  attempts: z.number().int().nonnegative(),
  deadLettered: z.boolean(),
});
export type RunFailure = z.infer<typeof runFailureSchema>;

export const runCancelledSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema,
  reason: z.string(),
});
export type RunCancelled = z.infer<typeof runCancelledSchema>;

/**
 * Added to the contract: `aob.agent.cancel.v1` on `agent.control.cancel`, the request to cancel a
 * run (published by the gateway for `POST /v1/runs/:runId/cancel`; `tenantid` required).
 */
export const runCancelRequestSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema.optional(),
  reason: z.string().max(1_000),
});
export type RunCancelRequest = z.infer<typeof runCancelRequestSchema>;

/** Added to the contract: one per finished (checkpointed) step. */
export const runStepSchema = z.object({
  runId: idSchema,
  agent: agentNameSchema,
  threadId: idSchema,
  step: z.number().int().positive(),
  id: z.string().optional(),
  checkpointId: z.string(),
  output: z.json().optional(),
});
export type RunStep = z.infer<typeof runStepSchema>;

export const usageRecordSchema = z.object({
  tenantId: tenantIdSchema,
  runId: idSchema.optional(),
  agent: agentNameSchema.optional(),
  requested: z.string().optional(),
  model: z.string(),
  deployment: z.string(),
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
  latencyMs: z.number().nonnegative(),
  at: z.iso.datetime({ offset: true }),
});
export type UsageRecord = z.infer<typeof usageRecordSchema>;

export const quotaExceededSchema = z.object({
  tenantId: tenantIdSchema,
  limit: z.string(),
  window: z.string(),
  observed: z.number(),
});
export type QuotaExceeded = z.infer<typeof quotaExceededSchema>;

/** A tenant reached `threshold` (a fraction, e.g. 0.8) of a limit; published once per window. */
export const budgetWarningSchema = z.object({
  tenantId: tenantIdSchema,
  limit: z.string(),
  window: z.string(),
  observed: z.number(),
  threshold: z.number().positive(),
});
export type BudgetWarning = z.infer<typeof budgetWarningSchema>;
