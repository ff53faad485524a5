import { bootstrapHttpApp } from '@aob/observability';
import { startAppUnderTest, type AppUnderTest } from '@aob/testing';
import { APP_NAME, AppModule } from '../../src/app.module';
import { loadDlqReplayerConfig } from '../../src/config';

describe('dlq-replayer boots, connects and reports health', () => {
  let sut: AppUnderTest;
  let base: string;

  beforeAll(async () => {
    sut = await startAppUnderTest(async (env) => {
      const config = loadDlqReplayerConfig(env);
      return bootstrapHttpApp(AppModule.forRoot(config), { app: APP_NAME, port: config.PORT });
    });
    base = sut.baseUrl;
  });

  afterAll(async () => sut?.close());

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
