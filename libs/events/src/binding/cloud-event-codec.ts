import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import type { CloudEvent, CloudEventV1 } from 'cloudevents';
import { decodeNatsCloudEvent, NATS, type DecodedCloudEvent } from './nats-binding';

const UTF8 = new TextEncoder();

/** What a NATS (or JetStream) message gives the decoder. */
export interface NatsCloudEventMessage {
  headers?: MsgHdrs;
  data: Uint8Array;
}

/**
 * Decodes a CloudEvent 1.0 from a NATS message in either content mode.
 * @throws DomainError('InvalidEvent') with the reason when the message is not a valid CloudEvent.
 */
export function decodeCloudEvent(msg: NatsCloudEventMessage): CloudEvent<unknown> {
  return decodeNatsCloudEvent(msg.headers, msg.data).event;
}

/** Like decodeCloudEvent, and also the attributes exactly as received and the content mode. */
export function decodeCloudEventDetailed(msg: NatsCloudEventMessage): DecodedCloudEvent {
  return decodeNatsCloudEvent(msg.headers, msg.data);
}

/** Encodes an event in binary content mode, ready for `nc.publish` / `js.publish`. */
export function encodeBinary(event: CloudEventV1<unknown>): { headers: MsgHdrs; data: Uint8Array } {
  const message = NATS.binary(event);
  const headers = natsHeaders();
  for (const [name, value] of Object.entries(message.headers)) headers.set(name, value);
  const data = typeof message.body === 'string' ? UTF8.encode(message.body) : message.body;
  return { headers, data };
}

/** Encodes an event in structured content mode (`application/cloudevents+json`). */
export function encodeStructured(event: CloudEventV1<unknown>): {
  headers: MsgHdrs;
  data: Uint8Array;
} {
  const message = NATS.structured(event);
  const headers = natsHeaders();
  for (const [name, value] of Object.entries(message.headers)) headers.set(name, value);
  const data = typeof message.body === 'string' ? UTF8.encode(message.body) : message.body;
  return { headers, data };
}
