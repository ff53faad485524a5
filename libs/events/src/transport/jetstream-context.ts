import type { JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import { BaseRpcContext } from '@nestjs/microservices';

/** The durable consumer a delivery came from. */
export interface JetStreamConsumerRef {
  stream: string;
  durable: string;
  /** max_deliver of the consumer; <= 0 means unlimited. */
  maxDeliver: number;
}

/**
 * Nest RPC context of one JetStream delivery (`@Ctx() ctx: JetStreamContext`). Settlement
 * (ack/nak/term) belongs to the transport: handlers return or throw, they never ack themselves.
 */
export class JetStreamContext extends BaseRpcContext<[JsMsg, JetStreamConsumerRef, AbortSignal]> {
  constructor(msg: JsMsg, consumer: JetStreamConsumerRef, signal: AbortSignal) {
    super([msg, consumer, signal]);
  }

  private get msg(): JsMsg {
    return this.args[0];
  }

  /** NATS subject the message was published to (e.g. `agent.execute.echo`). */
  get natsSubject(): string {
    return this.msg.subject;
  }

  get stream(): string {
    return this.args[1].stream;
  }

  get durable(): string {
    return this.args[1].durable;
  }

  /** Stream sequence: identifies the stored message across redeliveries. */
  get streamSeq(): number {
    return this.msg.info.streamSequence;
  }

  /** 1 on the first delivery. */
  get deliveryCount(): number {
    return this.msg.info.deliveryCount;
  }

  get maxDeliver(): number {
    return this.args[1].maxDeliver;
  }

  /** True when a retryable failure now will dead-letter the message instead of retrying it. */
  get isLastDelivery(): boolean {
    return this.maxDeliver > 0 && this.deliveryCount >= this.maxDeliver;
  }

  get headers(): MsgHdrs | undefined {
    return this.msg.headers;
  }

  /** Aborted when the shutdown grace period expires: stop, the message is handed to another worker. */
  get signal(): AbortSignal {
    return this.args[2];
  }
}
