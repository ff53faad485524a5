import { z } from 'zod';
import type { Permission } from '@aob/auth';
import { API_SCHEMAS, type ApiSchemaName } from './api-schemas';

/** An OpenAPI 3.1 document (loosely typed: it is generated, then served and committed as JSON). */
export type OpenApiDocument = Record<string, unknown> & {
  paths: Record<string, Record<string, unknown>>;
};

const ref = (name: ApiSchemaName) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (name: ApiSchemaName, description: string) => ({
  description,
  content: { 'application/json': { schema: ref(name) } },
});
const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

const COMMON_ERRORS = {
  '401': problem('missing or invalid credentials'),
  '403': problem('the caller lacks the permission'),
};

const idParam = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
});
const limitParam = {
  name: 'limit',
  in: 'query',
  description: 'page size',
  schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
};
const cursorParam = {
  name: 'cursor',
  in: 'query',
  description: 'the `nextCursor` of the previous page',
  schema: { type: 'string' },
};

interface Operation {
  summary: string;
  permission?: Permission;
  /** Not served yet: another issue implements it. */
  planned?: boolean;
  [key: string]: unknown;
}

function op({ summary, permission, planned, ...rest }: Operation): Record<string, unknown> {
  return {
    summary,
    ...(permission === undefined ? { security: [] } : { 'x-aob-permission': permission }),
    ...(planned ? { 'x-aob-status': 'planned' } : {}),
    ...rest,
  };
}

function paths(): OpenApiDocument['paths'] {
  return {
    '/v1/runs': {
      post: op({
        operationId: 'createRun',
        summary: 'Submit a run: queued now, executed by an agent executor',
        permission: 'runs:create',
        tags: ['runs'],
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            description:
              'repeat a submission safely: the same key and body answer the original run; another body answers 422',
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          },
          {
            name: 'traceparent',
            in: 'header',
            description: 'W3C trace context, carried on the events',
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('ExecuteRequest') } },
        },
        responses: {
          '202': {
            ...jsonBody('RunAccepted', 'queued'),
            headers: { Location: { description: '/v1/runs/{runId}', schema: { type: 'string' } } },
          },
          '400': problem(
            'invalid body, unknown agent (code UnknownAgent) or input not matching the agent input schema',
          ),
          ...COMMON_ERRORS,
          '409': problem('a run with this runId already exists'),
          '413': problem('body larger than 1 MiB'),
          '422': problem('the Idempotency-Key was used with another body'),
        },
      }),
      get: op({
        operationId: 'listRuns',
        summary: "The tenant's runs, newest first",
        permission: 'runs:read',
        tags: ['runs'],
        parameters: [
          {
            name: 'status',
            in: 'query',
            schema: {
              type: 'string',
              enum: ['queued', 'running', 'completed', 'failed', 'cancelled'],
            },
          },
          { name: 'agent', in: 'query', schema: { type: 'string' } },
          limitParam,
          cursorParam,
        ],
        responses: {
          '200': jsonBody('RunList', 'one page'),
          '400': problem('invalid filter'),
          ...COMMON_ERRORS,
        },
      }),
    },
    '/v1/runs/{runId}': {
      get: op({
        operationId: 'getRun',
        summary: 'One run',
        permission: 'runs:read',
        tags: ['runs'],
        parameters: [idParam('runId', 'run id')],
        responses: {
          '200': jsonBody('Run', 'the run'),
          '400': problem('invalid id'),
          ...COMMON_ERRORS,
          '404': problem('no such run in this tenant'),
        },
      }),
    },
    '/v1/runs/{runId}/events': {
      get: op({
        operationId: 'streamRunEvents',
        summary: 'The run as Server-Sent Events, ending after the terminal event',
        description:
          '`event:` status | token | step | completed | failed | cancelled; `data:` JSON (RunStatusEventData, RunTokenEventData, ' +
          'RunStepEventData, RunResult, RunFailure, RunCancelledEventData); `id:` resumable with Last-Event-ID. ' +
          'Comments (`: keep-alive`) keep idle connections open.',
        permission: 'runs:read',
        tags: ['runs'],
        parameters: [
          idParam('runId', 'run id'),
          {
            name: 'Last-Event-ID',
            in: 'header',
            description: 'resume after this event id',
            schema: { type: 'string' },
          },
          {
            name: 'lastEventId',
            in: 'query',
            description: 'as Last-Event-ID, for clients that cannot set headers',
            schema: { type: 'string' },
          },
        ],
        responses: {
          '200': {
            description: 'event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          '400': problem('invalid id or Last-Event-ID'),
          ...COMMON_ERRORS,
          '404': problem('no such run in this tenant'),
        },
      }),
    },
    '/v1/runs/{runId}/cancel': {
      post: op({
        operationId: 'cancelRun',
        summary:
          'Cancel a run: a queued run never starts, a running one is stopped (its model stream closed); it ends `cancelled` with event `cancelled` (repeating the request is harmless)',
        permission: 'runs:cancel',
        tags: ['runs'],
        parameters: [idParam('runId', 'run id')],
        requestBody: {
          required: false,
          content: { 'application/json': { schema: ref('RunCancel') } },
        },
        responses: {
          '202': jsonBody(
            'RunCancelAccepted',
            'cancellation requested (or the run is cancelled already)',
          ),
          '400': problem('invalid run id or body'),
          ...COMMON_ERRORS,
          '404': problem('no such run in this tenant'),
          '409': problem('the run has completed or failed already'),
        },
      }),
    },
    '/v1/threads/{threadId}/history': {
      get: op({
        operationId: 'getThreadHistory',
        summary: "The thread's checkpoints, newest first",
        permission: 'runs:read',
        tags: ['threads'],
        parameters: [idParam('threadId', 'thread id'), limitParam, cursorParam],
        responses: {
          '200': jsonBody('ThreadHistory', 'one page'),
          '400': problem('invalid id or query'),
          ...COMMON_ERRORS,
          '404': problem('no such thread in this tenant'),
        },
      }),
    },
    '/v1/agents': {
      get: op({
        operationId: 'listAgents',
        summary: 'Registered agents with their input schemas',
        permission: 'agents:read',
        tags: ['agents'],
        responses: { '200': jsonBody('AgentList', 'the agents'), ...COMMON_ERRORS },
      }),
    },
    '/v1/usage': {
      get: op({
        operationId: 'getUsage',
        summary: 'Tenant usage, grouped',
        permission: 'usage:read',
        planned: true,
        tags: ['usage'],
        parameters: [
          { name: 'from', in: 'query', schema: { type: 'string', format: 'date-time' } },
          { name: 'to', in: 'query', schema: { type: 'string', format: 'date-time' } },
          {
            name: 'groupBy',
            in: 'query',
            schema: { type: 'string', enum: ['model', 'deployment', 'agent', 'day'] },
          },
        ],
        responses: { '200': jsonBody('UsageList', 'usage'), ...COMMON_ERRORS },
      }),
    },
    '/v1/quotas': {
      get: op({
        operationId: 'getQuotas',
        summary: "The tenant's limits and what remains",
        permission: 'usage:read',
        planned: true,
        tags: ['quotas'],
        responses: { '200': jsonBody('Quotas', 'quotas'), ...COMMON_ERRORS },
      }),
    },
    '/v1/tenants/{tenantId}/quotas': {
      put: op({
        operationId: 'putTenantQuotas',
        summary: "Set a tenant's limits",
        permission: 'quotas:manage',
        planned: true,
        tags: ['quotas'],
        parameters: [{ name: 'tenantId', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('QuotaLimits') } },
        },
        responses: {
          '200': jsonBody('Quotas', 'the new limits'),
          ...COMMON_ERRORS,
          '404': problem('no such tenant'),
        },
      }),
    },
    '/v1/api-keys': {
      post: op({
        operationId: 'createApiKey',
        summary: 'Create an API key (the key is shown once)',
        description:
          "The key belongs to the caller's tenant (a platform admin, admin of tenant `*`, may name another). " +
          'A key never gets a permission its creator lacks: its role, narrowed by `scopes`, must be within the caller’s permissions. ' +
          'Use it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.',
        permission: 'keys:manage',
        tags: ['api-keys'],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('ApiKeyCreate') } },
        },
        responses: {
          '201': {
            ...jsonBody('ApiKeyCreated', 'created (Cache-Control: no-store)'),
            headers: {
              Location: { description: '/v1/api-keys/{id}', schema: { type: 'string' } },
            },
          },
          '400': problem('invalid body, or expiresAt not in the future'),
          '401': COMMON_ERRORS['401'],
          '403': problem(
            'the caller lacks keys:manage, or a permission the key would get (named in `permission`), or names another tenant without being a platform admin',
          ),
        },
      }),
      get: op({
        operationId: 'listApiKeys',
        summary: "The tenant's live API keys, newest first (never the keys themselves)",
        permission: 'keys:manage',
        tags: ['api-keys'],
        parameters: [
          {
            name: 'tenantId',
            in: 'query',
            description: "platform admins only: one tenant's keys (default: every tenant)",
            schema: { type: 'string' },
          },
          limitParam,
          cursorParam,
        ],
        responses: {
          '200': jsonBody('ApiKeyList', 'one page'),
          '400': problem('invalid query'),
          ...COMMON_ERRORS,
        },
      }),
    },
    '/v1/api-keys/{id}': {
      delete: op({
        operationId: 'deleteApiKey',
        summary: 'Revoke an API key',
        description:
          'Takes effect at once on the gateway process that answers; other processes stop accepting the key ' +
          'within their verified-key cache time (API_KEY_CACHE_MS, default 30 s).',
        permission: 'keys:manage',
        tags: ['api-keys'],
        parameters: [
          {
            name: 'id',
            in: 'path',
            required: true,
            description: 'key id',
            schema: { type: 'string', format: 'uuid' },
          },
        ],
        responses: {
          '204': { description: 'revoked' },
          '400': problem('invalid id'),
          ...COMMON_ERRORS,
          '404': problem('no such key in this tenant (or already revoked)'),
        },
      }),
    },
    '/v1/dlq': {
      get: op({
        operationId: 'listDeadLetters',
        summary: "The tenant's dead letters (admin of tenant `*`: all)",
        permission: 'dlq:manage',
        tags: ['dlq'],
        parameters: [
          {
            name: 'status',
            in: 'query',
            schema: { type: 'string', enum: ['quarantined', 'parked', 'replayed', 'discarded'] },
          },
          {
            name: 'subject',
            in: 'query',
            description: 'the original NATS subject',
            schema: { type: 'string' },
          },
          limitParam,
          cursorParam,
        ],
        responses: {
          '200': jsonBody('DeadLetterList', 'one page'),
          '400': problem('invalid filter'),
          ...COMMON_ERRORS,
        },
      }),
    },
    '/v1/dlq/replay': {
      post: op({
        operationId: 'replayDeadLetters',
        summary:
          'Replay every dead letter matching a filter (not discarded; at most 1000 per call)',
        permission: 'dlq:manage',
        tags: ['dlq'],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('DeadLetterReplayFilter') } },
        },
        responses: {
          '202': jsonBody('DeadLetterReplayResult', 'how many were replayed'),
          '400': problem('invalid body'),
          ...COMMON_ERRORS,
          '503': problem('JetStream unavailable: the rest were not replayed'),
        },
      }),
    },
    '/v1/dlq/{id}': {
      get: op({
        operationId: 'getDeadLetter',
        summary: 'One dead letter',
        permission: 'dlq:manage',
        tags: ['dlq'],
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': jsonBody('DeadLetter', 'the dead letter'),
          ...COMMON_ERRORS,
          '404': problem('not found'),
        },
      }),
      delete: op({
        operationId: 'discardDeadLetter',
        summary: 'Discard a dead letter',
        permission: 'dlq:manage',
        tags: ['dlq'],
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '204': { description: 'discarded' },
          ...COMMON_ERRORS,
          '404': problem('not found'),
        },
      }),
    },
    '/v1/dlq/{id}/replay': {
      post: op({
        operationId: 'replayDeadLetter',
        summary: 'Publish a dead letter again to its original subject',
        permission: 'dlq:manage',
        tags: ['dlq'],
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '202': jsonBody(
            'DeadLetter',
            'replayed: republished with the same CloudEvent id, a fresh Nats-Msg-Id and `ce-aobreplay`',
          ),
          ...COMMON_ERRORS,
          '404': problem('not found'),
          '409': problem('discarded, or its original payload was gone when captured'),
          '503': problem('JetStream unavailable'),
        },
      }),
    },
    '/openapi.json': {
      get: op({
        operationId: 'getOpenApi',
        summary: 'This document',
        tags: ['meta'],
        responses: {
          '200': {
            description: 'OpenAPI 3.1',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
        },
      }),
    },
  };
}

/** JSON Schemas of API_SCHEMAS as OpenAPI components (generated from the zod schemas). */
function componentSchemas(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(API_SCHEMAS)) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    // Request side: zod strips unknown keys rather than rejecting them; responses may gain fields.
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
    override: (ctx) => {
      // z.json() is a recursive lazy union: document it as "any JSON value" instead.
      if ((ctx.zodSchema as { _zod: { def: { type: string } } })._zod.def.type === 'lazy') {
        for (const key of Object.keys(ctx.jsonSchema))
          delete (ctx.jsonSchema as Record<string, unknown>)[key];
        (ctx.jsonSchema as Record<string, unknown>).description = 'any JSON value';
      }
    },
  }) as { schemas: Record<string, Record<string, unknown>> };
  const shared = (generated.schemas.__shared?.$defs ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const id of Object.keys(API_SCHEMAS)) {
    const { $schema: _s, $id: _i, ...schema } = generated.schemas[id] ?? {};
    out[id] = inlineShared(schema, shared);
  }
  return out;
}

const SHARED_REF = '#/components/schemas/__shared#/$defs/';

/** Replaces refs into zod's `__shared` bucket (only "any JSON" after the override) by their content. */
function inlineShared(node: unknown, shared: Record<string, unknown>): unknown {
  if (Array.isArray(node)) return node.map((n) => inlineShared(n, shared));
  if (node === null || typeof node !== 'object') return node;
  const obj = node as Record<string, unknown>;
  if (typeof obj.$ref === 'string' && obj.$ref.startsWith(SHARED_REF)) {
    const { $ref, ...rest } = obj;
    const target = shared[$ref.slice(SHARED_REF.length)];
    if (target === undefined) throw new Error(`OpenAPI generation: unresolved ${$ref}`);
    return { ...(inlineShared(target, shared) as Record<string, unknown>), ...rest };
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, inlineShared(v, shared)]));
}

/** The OpenAPI 3.1 document of CONTRACT.md section 6 (served at /openapi.json, committed as apps/gateway/openapi.json). */
export function buildOpenApiDocument(): OpenApiDocument {
  return {
    openapi: '3.1.0',
    info: {
      title: 'AOB gateway API',
      version: '1.0.0',
      description:
        'Public HTTP API of AOB, the Agent Orchestration Backbone. Errors are RFC 9457 problem+json. ' +
        'Operations marked `x-aob-status: planned` are part of the contract but not served yet. ' +
        'A caller sees only its own tenant: another tenant’s ids answer 404.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ ApiKey: [] }, { bearer: [] }],
    tags: [
      { name: 'runs' },
      { name: 'threads' },
      { name: 'agents' },
      { name: 'usage' },
      { name: 'quotas' },
      { name: 'api-keys' },
      { name: 'dlq' },
      { name: 'meta' },
    ],
    paths: paths(),
    components: {
      securitySchemes: {
        ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'an OIDC access token, or an API key (told apart by its form)',
        },
      },
      schemas: componentSchemas(),
    },
  };
}
