import { DomainError } from '@aob/errors';
import { decodeCloudEvent, EventPublisher, executeSubject } from '@aob/events';
import { natsFixture, type NatsFixture } from './support';

// Private nats-server per suite, and close() waits for open pull requests (up to 5 s).
jest.setTimeout(60_000);

describe('EventPublisher (private nats-server)', () => {
  let nats: NatsFixture;
  let publisher: EventPublisher;
  beforeAll(async () => {
    nats = await natsFixture();
    publisher = new EventPublisher(nats.js, 'aob://test');
  });
  afterAll(async () => {
    await nats.close();
  });

  it('publishes a binary-mode CloudEvent with Nats-Msg-Id = event id and the extensions', async () => {
    const result = await publisher.publish(
      'agentExecute',
      { agent: 'echo', input: { message: 'hi there' } },
      {
        subject: executeSubject('echo'),
        tenantId: 'acme',
        ceSubject: 'run 1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
    );
    expect(result.duplicate).toBe(false);
    expect(result.id).toMatch(/^[0-9a-f-]{36}$/);
    const stored = (await nats.jsm.streams.getMessage('AGENT_EXECUTION', { seq: result.seq }))!;
    expect(stored.header.get('Nats-Msg-Id')).toBe(result.id);
    expect(stored.header.get('ce-datacontenttype')).toBe('application/json');
    expect(stored.header.get('ce-subject')).toBe('run%201');
    const event = decodeCloudEvent({ headers: stored.header, data: stored.data });
    expect(event).toMatchObject({
      id: result.id,
      type: 'aob.agent.execute.v1',
      source: 'aob://test',
      tenantid: 'acme',
      subject: 'run 1',
    });
    expect(event.data).toEqual({ agent: 'echo', input: { message: 'hi there' } });
  });

  it('stores a repeated publish of the same event id once (duplicate window)', async () => {
    const data = { runId: 'run-1', agent: 'echo', threadId: 'thread-1', attempt: 1 };
    const first = await publisher.publish('agentStarted', data, {
      id: 'evt-dup-1',
      tenantId: 'acme',
      ceSubject: 'run-1',
    });
    const second = await publisher.publish('agentStarted', data, {
      id: 'evt-dup-1',
      tenantId: 'acme',
      ceSubject: 'run-1',
    });
    expect(first.duplicate).toBe(false);
    expect(second).toEqual({ id: 'evt-dup-1', seq: first.seq, duplicate: true });
    const third = await publisher.publish('agentStarted', data, {
      id: 'evt-dup-2',
      msgId: 'evt-dup-1',
    });
    expect(third.duplicate).toBe(true);
    const info = await nats.jsm.streams.info('AGENT_STATUS');
    expect(info.state.messages).toBe(1);
  });

  it('rejects data that does not match the catalog schema, before publishing', async () => {
    const before = (await nats.jsm.streams.info('AGENT_EXECUTION')).state.messages;
    const attempt = publisher.publish(
      'agentExecute',
      { agent: 'Bad Agent!', input: 1 },
      { subject: executeSubject('x') },
    );
    await expect(attempt).rejects.toBeInstanceOf(DomainError);
    await expect(
      publisher.publish(
        'agentExecute',
        { agent: 'Bad Agent!', input: 1 },
        { subject: executeSubject('x') },
      ),
    ).rejects.toMatchObject({
      code: 'InvalidRequest',
      message: expect.stringContaining('agent'),
    });
    expect((await nats.jsm.streams.info('AGENT_EXECUTION')).state.messages).toBe(before);
  });

  it('requires a concrete subject matching the catalog pattern', async () => {
    const data = { agent: 'echo', input: null };
    await expect(publisher.publish('agentExecute', data, {})).rejects.toMatchObject({
      code: 'InvalidRequest',
      message: expect.stringMatching(/concrete NATS subject/),
    });
    await expect(
      publisher.publish('agentExecute', data, { subject: 'agent.status.started' }),
    ).rejects.toMatchObject({ code: 'InvalidRequest' });
  });

  it('reports a publish nobody stores as retryable Unavailable', async () => {
    const { CloudEvent } = await import('cloudevents');
    const event = new CloudEvent<unknown>({ id: 'x', source: 's', type: 't', data: {} });
    await expect(publisher.publishCloudEvent('nowhere.at.all', event)).rejects.toMatchObject({
      code: 'Unavailable',
      retryable: true,
    });
  });
});
