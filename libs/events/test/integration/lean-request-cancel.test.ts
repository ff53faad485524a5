import { errors } from '@nats-io/nats-core';
import { leanRequestCancel } from '@aob/events';
import { natsFixture, type NatsFixture } from './support';

describe('leanRequestCancel (nats-core RequestOne without a stack trace per finished request)', () => {
  let f: NatsFixture;

  beforeAll(async () => {
    f = await natsFixture(); // connectNats applies it
  });

  afterAll(async () => {
    await f?.close();
  });

  it('applies to the installed nats-core (update it when this fails after an upgrade)', () => {
    expect(leanRequestCancel()).toBe(true);
    expect(leanRequestCancel()).toBe(true); // idempotent
  });

  it('requests still answer, fail with no responders and time out as before', async () => {
    const sub = f.nc.subscribe('lean.echo', {
      callback: (_err, msg) => {
        msg.respond(`echo:${msg.string()}`);
      },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const reply = await f.nc.request('lean.echo', `hi ${i}`, { timeout: 1_000 });
        expect(reply.string()).toBe(`echo:hi ${i}`);
      }
      const noResponders = await f.nc
        .request('lean.nobody', 'x', { timeout: 1_000 })
        .catch((e: unknown) => e);
      expect(noResponders).toBeInstanceOf(errors.RequestError);
      expect((noResponders as Error).message).toMatch(/no responders/);

      f.nc.subscribe('lean.silent', { callback: () => undefined });
      const timedOut = await f.nc
        .request('lean.silent', 'x', { timeout: 100 })
        .catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(errors.TimeoutError);
    } finally {
      sub.unsubscribe();
    }
  });

  it('JetStream publishes still get their acknowledgement', async () => {
    const ack = await f.js.publish('agent.status.lean', 'x', { msgID: 'lean-1' });
    expect(ack.seq).toBeGreaterThan(0);
    expect((await f.js.publish('agent.status.lean', 'x', { msgID: 'lean-1' })).duplicate).toBe(
      true,
    );
  });
});
