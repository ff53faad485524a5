import type { IncomingHttpHeaders } from 'node:http';
import type { Principal } from '@aob/auth';
import { AGENT_NAME_PATTERN, ID_PATTERN } from '@aob/events';
import { invalidParam } from '../openai/openai-errors';

/** Who a completion is billed to. */
export interface Caller {
  tenantId: string;
  /** The run the executor makes this call for (service callers only). */
  runId?: string;
  /** The agent of that run (service callers only). */
  agent?: string;
}

/**
 * The usage attribution of a request. Only the service principal (the executor) may attribute
 * usage to a run and agent; the same headers from any other caller are ignored, so a user key
 * cannot bill its calls to someone's run.
 */
export function callerFrom(principal: Principal, headers: IncomingHttpHeaders): Caller {
  const caller: Caller = { tenantId: principal.tenantId };
  if (principal.kind !== 'service') return caller;
  const runId = header(headers, 'x-aob-run-id');
  if (runId !== undefined) {
    if (!ID_PATTERN.test(runId))
      throw invalidParam(null, 'x-aob-run-id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
    caller.runId = runId;
  }
  const agent = header(headers, 'x-aob-agent');
  if (agent !== undefined) {
    if (!AGENT_NAME_PATTERN.test(agent))
      throw invalidParam(null, 'x-aob-agent must match [a-z0-9][a-z0-9_-]{0,63}');
    caller.agent = agent;
  }
  return caller;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const single = Array.isArray(value) ? value[0] : value;
  return single === undefined || single === '' ? undefined : single;
}
