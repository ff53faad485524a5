import 'reflect-metadata';
import { DomainError } from '@aob/errors';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import type { INestMicroservice } from '@nestjs/common';
import {
  connectNats,
  EVENTS,
  EventPublisher,
  JetStreamContext,
  JetStreamExceptionFilter,
  JetStreamServer,
  provisionJetStream,
  type ExecuteRequest,
  type InboundEvent,
  type TerminationInfo,
} from '@aob/events';
import { eventually, natsFixture, quietLogger, testConsumer, type NatsFixture } from './support';

jest.setTimeout(60_000);

const handled: { id: string; agent: string; deliveryCount: number }[] = [];

@Controller()
class ExecuteHandler {
  @EventPattern(EVENTS.agentExecute.type)
  async execute(
    @Payload() event: InboundEvent<ExecuteRequest>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    const input = event.data.input as { fail?: string };
    if (input.fail === 'permanent')
      throw new DomainError('AgentFailed', 'permanent failure requested');
    handled.push({ id: event.id, agent: event.data.agent, deliveryCount: ctx.deliveryCount });
  }
}

@Module({ controllers: [ExecuteHandler] })
class WorkerModule {}

describe('JetStreamServer inside a Nest microservice', () => {
  let nats: NatsFixture;
  let app: INestMicroservice;
  const terminated: TerminationInfo[] = [];
  const consumer = testConsumer();

  beforeAll(async () => {
    nats = await natsFixture();
    await provisionJetStream(nats.jsm, { streams: [], consumers: [consumer.spec] });
    const strategy = new JetStreamServer({
      // The server owns a connection it made: close() drains it.
      connection: () => connectNats({ url: nats.server.url, name: 'nest-worker' }),
      consumers: [consumer.spec],
      onTerminate: (t) => void terminated.push(t),
      logger: quietLogger,
    });
    app = await NestFactory.createMicroservice(WorkerModule, { strategy, logger: false });
    app.useGlobalFilters(new JetStreamExceptionFilter());
    await app.listen();
  });
  afterAll(async () => {
    await app?.close();
    await nats.close();
  });

  it('routes by CloudEvent type to @EventPattern handlers and acks', async () => {
    const publisher = new EventPublisher(nats.js, 'aob://test');
    const ok = await publisher.publish(
      'agentExecute',
      { agent: consumer.agent, input: {} },
      { subject: consumer.subject },
    );
    await eventually(() => handled.some((h) => h.id === ok.id), 'the Nest handler');
    expect(handled.find((h) => h.id === ok.id)).toEqual({
      id: ok.id,
      agent: consumer.agent,
      deliveryCount: 1,
    });
  });

  it('with JetStreamExceptionFilter, a non-retryable DomainError keeps its code and is terminated at once', async () => {
    const publisher = new EventPublisher(nats.js, 'aob://test');
    const bad = await publisher.publish(
      'agentExecute',
      { agent: consumer.agent, input: { fail: 'permanent' } },
      { subject: consumer.subject, tenantId: 'acme' },
    );
    await eventually(() => terminated.some((t) => t.eventId === bad.id), 'the termination');
    expect(terminated.find((t) => t.eventId === bad.id)).toMatchObject({
      code: 'AgentFailed',
      reason: 'permanent failure requested',
      deliveryCount: 1,
      tenantId: 'acme',
    });
  });
});
