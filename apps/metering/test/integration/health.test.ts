import { bootstrapHttpApp } from '@aob/observability';
import { startAppUnderTest, waitFor, type AppUnderTest } from '@aob/testing';
import { APP_NAME, AppModule } from '../../src/app.module';
import { loadMeteringConfig } from '../../src/config';

describe('metering boots, connects and reports health', () => {
  let sut: AppUnderTest;
  let base: string;
  let nats: AppUnderTest['nats'];

  beforeAll(async () => {
    sut = await startAppUnderTest(async (env) => {
      const config = loadMeteringConfig(env);
      return bootstrapHttpApp(AppModule.forRoot(config), { app: APP_NAME, port: config.PORT });
    });
    base = sut.baseUrl;
    nats = sut.nats;
  });

  afterAll(async () => sut?.close());

  it('serves /healthz, /readyz and /metrics', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ready',
      checks: { nats: { status: 'up' }, postgres: { status: 'up' }, redis: { status: 'up' } },
    });
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('process_cpu_user_seconds_total');
  });

  it('provisioned the streams and its durable consumer at start-up', async () => {
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const names = (await jsm.streams.names().next()).sort();
    expect(names).toEqual(
      expect.arrayContaining(['AGENT_EXECUTION', 'AGENT_STATUS', 'DLQ', 'METERING']),
    );
    expect((await jsm.consumers.info('METERING', 'metering')).config.durable_name).toBe('metering');
    await nc.close();
  });

  it('answers 503 naming nats while NATS is down, and 200 again when it is back', async () => {
    await nats.stop();
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 503, {
      timeoutMs: 10_000,
      what: '503',
    });
    const body = (await (await fetch(`${base}/readyz`)).json()) as { down: string[] };
    expect(body.down).toEqual(['nats']);
    await nats.restart();
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, {
      timeoutMs: 20_000,
      what: 'ready again',
    });
  });
});
