import type { INestApplication } from '@nestjs/common';
import { bootstrapHttpApp } from '@aob/observability';
import {
  createTestDatabase,
  freePort,
  startNatsServer,
  testRedisUrl,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { APP_NAME, AppModule } from '../../src/app.module';
import { loadDlqReplayerConfig } from '../../src/config';

describe('dlq-replayer boots, connects and reports health', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    db = await createTestDatabase();
    const port = await freePort();
    const config = loadDlqReplayerConfig({
      NATS_URL: nats.url,
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl(),
      PORT: String(port),
      LOG_LEVEL: 'silent',
    });
    app = await bootstrapHttpApp(AppModule.forRoot(config), { app: APP_NAME, port: config.PORT });
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await app?.close();
    await nats?.stop();
    await db?.drop();
  });

  it('is ready with NATS, Postgres and Redis up, and says so', async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      checks: { nats: { status: 'up' }, postgres: { status: 'up' }, redis: { status: 'up' } },
    });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('answers unknown routes with problem+json and security headers', async () => {
    const res = await fetch(`${base}/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.headers.get('x-powered-by')).toBeNull();
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
