import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import { z } from 'zod';
import { createTestDatabase, testRedisUrl, uniqueKeyPrefix, type TestDatabase } from '@aob/testing';
import { startGateway } from '../../src/app.module';
import { loadGatewayConfig, type GatewayConfig } from '../../src/config';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
export const TENANT = 'tenant-a';

/** Input schemas as the executor registers them (z.toJSONSchema of its agents' zod schemas). */
export const ECHO_INPUT_SCHEMA = z.toJSONSchema(
  z.object({
    message: z.json().optional(),
    delayMs: z.number().int().nonnegative().optional(),
    fail: z.enum(['transient', 'permanent']).optional(),
    failTimes: z.number().int().nonnegative().optional(),
    steps: z.number().int().positive().optional(),
  }),
  { io: 'input' },
);
export const CHAT_INPUT_SCHEMA = z.toJSONSchema(
  z.union([
    z.object({
      messages: z
        .array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }))
        .min(1),
      system: z.string().optional(),
    }),
    z.object({ prompt: z.string().min(1) }),
  ]),
  { io: 'input' },
);

/** Registers echo and chat the way an executor would (the gateway only reads executor.agents). */
export async function registerAgents(databaseUrl: string): Promise<void> {
  await withPg(databaseUrl, async (pg) => {
    for (const [name, description, schema] of [
      ['echo', 'diagnostics: returns its input', ECHO_INPUT_SCHEMA],
      ['chat', 'one completion through the model gateway', CHAT_INPUT_SCHEMA],
    ] as const) {
      await pg.query(
        `INSERT INTO executor.agents (name, description, input_schema, version) VALUES ($1, $2, $3, '1')
         ON CONFLICT (name) DO UPDATE SET input_schema = EXCLUDED.input_schema, updated_at = now()`,
        [name, description, JSON.stringify(schema)],
      );
    }
  });
}

export async function withPg<T>(url: string, fn: (pg: Client) => Promise<T>): Promise<T> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    return await fn(pg);
  } finally {
    await pg.end();
  }
}

export interface GatewayHarness {
  app: INestApplication;
  baseUrl: string;
  config: GatewayConfig;
  db: TestDatabase;
  /** Key prefix of this suite's Redis run streams. */
  redisPrefix: string;
  /** fetch against the gateway with the admin key (pass `key: null` for none). */
  request(
    path: string,
    init?: RequestInit & { key?: string | null; json?: unknown },
  ): Promise<Response>;
  close(): Promise<void>;
}

/** A fresh database, the agents registered, and the gateway booted in-process on a free port. */
export async function startHarness(
  natsUrl: string,
  env: Record<string, string> = {},
  /** databaseServerUrl: a private Postgres server (startPostgresServer) instead of the shared one */
  opts: { databaseServerUrl?: string } = {},
): Promise<GatewayHarness> {
  const db = await createTestDatabase('aob_gateway', opts.databaseServerUrl);
  await registerAgents(db.url);
  const redisPrefix = uniqueKeyPrefix('gw');
  const config = loadGatewayConfig({
    PORT: '0',
    DATABASE_URL: db.url,
    NATS_URL: natsUrl,
    REDIS_URL: testRedisUrl(),
    AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
    AOB_BOOTSTRAP_TENANT: TENANT,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    RUN_STREAM_KEY_PREFIX: redisPrefix,
    AGENTS_CACHE_MS: '0',
    ...env,
  });
  const app = await startGateway(config);
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    app,
    baseUrl,
    config,
    db,
    redisPrefix,
    request(path, init = {}) {
      const { key = ADMIN_KEY, json, headers, ...rest } = init;
      const h = new Headers(headers);
      if (key !== null) h.set('x-api-key', key);
      if (json !== undefined) h.set('content-type', 'application/json');
      return fetch(baseUrl + path, {
        ...rest,
        headers: h,
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
    },
    async close() {
      await app.close();
      await db.drop();
    },
  };
}
