import { errors } from '@nats-io/nats-core';
import { RequestOne } from '@nats-io/nats-core/internal';

const PATCHED = Symbol.for('aob.nats.leanRequestCancel');
/** What `cancel()` of nats-core 3.x does when given no error; the patch applies only to this. */
const EXPECTED_BODY =
  /this\.deferred\.reject\(err \? err : new errors_1\.RequestError\("cancelled"\)\)/;

type Cancel = (this: unknown, err?: Error) => void;

/**
 * nats-core 3.x settles every finished request (a JetStream publish's PubAck included) and then
 * calls `cancel()`, which builds a `RequestError("cancelled")` — with a captured stack trace —
 * only to reject a promise that is already settled, so nobody ever sees it. That error costs
 * about 3 % of the CPU of a process that publishes to JetStream on its hot path.
 *
 * This makes `RequestOne#cancel()` without an error reject with one shared `RequestError`
 * ("cancelled") built once, and leaves everything else (the error passed in, timers, the mux)
 * as it was. It applies only when `cancel` still reads as in the 3.x sources; otherwise it
 * changes nothing and returns false (an integration test checks it applies to the version
 * installed).
 * @returns whether the patch is in place
 */
export function leanRequestCancel(): boolean {
  const proto = RequestOne.prototype as unknown as { cancel: Cancel; [PATCHED]?: true };
  if (proto[PATCHED]) return true;
  const original = proto.cancel;
  if (typeof original !== 'function' || !EXPECTED_BODY.test(original.toString())) return false;
  const cancelled = new errors.RequestError('cancelled');
  proto.cancel = function cancel(this: unknown, err?: Error) {
    original.call(this, err ?? cancelled);
  };
  proto[PATCHED] = true;
  return true;
}
