import { setTimeout as delay } from 'node:timers/promises';
import { DomainError } from '@aob/errors';
import { z } from 'zod';
import { defineAgent, type AgentContext } from './agent-definition';

export const echoInputSchema = z
  .object({
    message: z.json().optional(),
    delayMs: z.number().int().nonnegative().max(3_600_000).optional(),
    fail: z.enum(['transient', 'permanent']).optional(),
    /** With `fail: transient`: fail on deliveries 1..failTimes, succeed after. @default every delivery */
    failTimes: z.number().int().nonnegative().optional(),
    steps: z.number().int().positive().max(1_000).optional(),
  })
  .strict();

export type EchoInput = z.infer<typeof echoInputSchema>;

/**
 * Diagnostics agent (CONTRACT.md section 5): returns `{echo: message}` after `delayMs`; with
 * `steps` > 1 that many checkpointed steps of `delayMs` each. Failures happen in the last step, so
 * a transient failure of a multi-step run shows the resume: earlier steps are not run again.
 */
export const echoAgent = defineAgent({
  name: 'echo',
  description:
    'Diagnostics: returns {echo: message} after delayMs; optional checkpointed steps and simulated failures.',
  version: '1',
  inputSchema: echoInputSchema,
  async run(ctx, input) {
    const steps = input.steps ?? 1;
    const message = input.message ?? null;
    if (steps === 1) {
      return ctx.step('echo', async () => {
        await pause(input.delayMs, ctx.signal);
        failIfAsked(ctx, input);
        return { echo: message };
      });
    }
    for (let i = 1; i <= steps; i++) {
      await ctx.step(`step-${i}`, async () => {
        await pause(input.delayMs, ctx.signal);
        if (i === steps) failIfAsked(ctx, input);
        return { step: i, of: steps };
      });
    }
    return { echo: message };
  },
});

async function pause(ms: number | undefined, signal: AbortSignal): Promise<void> {
  if (!ms) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // Aborted: the run's signal carries why (shutdown, timeout); the executor reads it from there.
    signal.throwIfAborted();
  }
}

function failIfAsked(ctx: AgentContext, input: EchoInput): void {
  if (input.fail === 'permanent') {
    throw new DomainError('AgentFailed', 'echo: simulated permanent failure', { retryable: false });
  }
  if (
    input.fail === 'transient' &&
    (input.failTimes === undefined || ctx.attempt <= input.failTimes)
  ) {
    const of = input.failTimes === undefined ? 'every delivery' : `deliveries 1-${input.failTimes}`;
    throw new DomainError(
      'AgentFailed',
      `echo: simulated transient failure on delivery ${ctx.attempt} (fails ${of})`,
      {
        retryable: true,
      },
    );
  }
}
