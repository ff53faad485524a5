import type { z } from 'zod';
import type { StreamName } from './streams';
import {
  budgetWarningSchema,
  executeRequestSchema,
  quotaExceededSchema,
  runCancelledSchema,
  runCancelRequestSchema,
  runFailureSchema,
  runResultSchema,
  runStartedSchema,
  runStepSchema,
  usageRecordSchema,
} from './schemas';

/** One CloudEvent type: its subject (pattern), the stream that stores it and the schema of `data`. */
export interface EventDefinition<S extends z.ZodType = z.ZodType> {
  /** CloudEvent `type`. */
  type: string;
  /** NATS subject, or a wildcard pattern when the subject has a variable token. */
  subject: string;
  stream: StreamName;
  schema: S;
}

const define = <S extends z.ZodType>(def: EventDefinition<S>) => def;

export const EVENTS = {
  agentExecute: define({
    type: 'aob.agent.execute.v1',
    subject: 'agent.execute.*',
    stream: 'AGENT_EXECUTION',
    schema: executeRequestSchema,
  }),
  agentStarted: define({
    type: 'aob.agent.started.v1',
    subject: 'agent.status.started',
    stream: 'AGENT_STATUS',
    schema: runStartedSchema,
  }),
  agentStep: define({
    type: 'aob.agent.step.v1',
    subject: 'agent.status.step',
    stream: 'AGENT_STATUS',
    schema: runStepSchema,
  }),
  agentCompleted: define({
    type: 'aob.agent.completed.v1',
    subject: 'agent.status.completed',
    stream: 'AGENT_STATUS',
    schema: runResultSchema,
  }),
  agentFailed: define({
    type: 'aob.agent.failed.v1',
    subject: 'agent.status.failed',
    stream: 'AGENT_STATUS',
    schema: runFailureSchema,
  }),
  agentCancelled: define({
    type: 'aob.agent.cancelled.v1',
    subject: 'agent.status.cancelled',
    stream: 'AGENT_STATUS',
    schema: runCancelledSchema,
  }),
  /** Added to the contract: a request to cancel a run; every executor follows AGENT_CONTROL. */
  agentCancel: define({
    type: 'aob.agent.cancel.v1',
    subject: 'agent.control.cancel',
    stream: 'AGENT_CONTROL',
    schema: runCancelRequestSchema,
  }),
  meteringUsage: define({
    type: 'aob.metering.usage.v1',
    subject: 'metering.usage',
    stream: 'METERING',
    schema: usageRecordSchema,
  }),
  quotaExceeded: define({
    type: 'aob.metering.quota_exceeded.v1',
    subject: 'metering.quota.exceeded',
    stream: 'METERING',
    schema: quotaExceededSchema,
  }),
  budgetWarning: define({
    type: 'aob.metering.budget_warning.v1',
    subject: 'metering.budget.warning',
    stream: 'METERING',
    schema: budgetWarningSchema,
  }),
} as const;

export type EventKey = keyof typeof EVENTS;
export type EventData<K extends EventKey> = z.infer<(typeof EVENTS)[K]['schema']>;

const BY_TYPE = new Map<string, EventDefinition>(Object.values(EVENTS).map((d) => [d.type, d]));

/** The catalog entry for a CloudEvent type, if AOB knows it. */
export function eventByType(type: string): EventDefinition | undefined {
  return BY_TYPE.get(type);
}

export const executeSubject = (agent: string) => `agent.execute.${agent}`;
export const dlqSubject = (originalSubject: string) => `dlq.${originalSubject}`;

/** Source attribute AOB apps put on the events they publish. */
export const eventSource = (app: string) => `aob://${app}`;
