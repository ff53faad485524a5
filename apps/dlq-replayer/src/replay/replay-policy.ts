/**
 * Failure codes no replay can fix: the message itself is wrong (not a CloudEvent, invalid data,
 * an agent that does not exist, too large). Such entries are parked at once for a human.
 */
export const POISON_CODES: ReadonlySet<string> = new Set([
  'InvalidEvent',
  'InvalidRequest',
  'UnknownAgent',
  'PayloadTooLarge',
]);

export const isPoison = (code: string | null | undefined): boolean =>
  code !== null && code !== undefined && POISON_CODES.has(code);

export interface ReplayPolicyOptions {
  quarantineMs: number;
  maxReplays: number;
}

/**
 * Where a dead letter goes after a failure, given how often it was replayed already: parked when
 * poison or out of replays, else quarantined for quarantineMs x 2^replays (exponential backoff).
 */
export function afterFailure(
  code: string | null,
  replays: number,
  opts: ReplayPolicyOptions,
  now: Date = new Date(),
): { status: 'quarantined' | 'parked'; quarantineUntil: Date | null } {
  if (isPoison(code) || replays >= opts.maxReplays)
    return { status: 'parked', quarantineUntil: null };
  const delay = opts.quarantineMs * 2 ** Math.min(replays, 20);
  return { status: 'quarantined', quarantineUntil: new Date(now.getTime() + delay) };
}
