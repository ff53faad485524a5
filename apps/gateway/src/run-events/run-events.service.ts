import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { Response } from 'express';
import { isTerminalRunEvent, RunEventStream, type RunStreamEntry } from '@aob/events';
import { gauge } from '@aob/observability';
import { TERMINAL_STATUSES } from '@aob/persistence';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { invalid } from '../common/validation';
import type { RunRecord } from '../runs/run-record';
import { RunQueryService } from '../runs/run-query.service';
import { RunRepository } from '../runs/run.repository';
import { SseWriter } from './sse-writer';

const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;
const BACKLOG_PAGE = 1_000;
/** What browsers wait before reconnecting. */
const RETRY_MS = 2_000;

const openStreams = () =>
  gauge({ name: 'aob_gateway_sse_streams', help: 'Open SSE run event streams' });

/** A `Last-Event-ID` (header or `lastEventId` query) must be a Redis stream entry id. */
export function parseLastEventId(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const id = value.trim();
  if (!ENTRY_ID.test(id)) {
    throw invalid('Last-Event-ID is invalid', [
      { path: 'Last-Event-ID', message: 'must be an event id this stream sent (<ms>-<seq>)' },
    ]);
  }
  return id;
}

/** The terminal event a run stream would have ended with, rebuilt from the stored run. */
export function synthesizeTerminalEvent(
  run: RunRecord,
): { event: 'completed' | 'failed' | 'cancelled'; data: unknown } | undefined {
  const base = { runId: run.runId, agent: run.agent, threadId: run.threadId };
  const error = (run.error ?? {}) as {
    code?: string;
    message?: string;
    retryable?: boolean;
    deadLettered?: boolean;
  };
  switch (run.status) {
    case 'completed':
      return {
        event: 'completed',
        data: {
          ...base,
          output: run.output,
          usage: run.usage,
          attempts: run.attempts,
          durationMs: run.durationMs ?? 0,
        },
      };
    case 'failed':
      return {
        event: 'failed',
        data: {
          ...base,
          error: {
            code: error.code ?? 'Unknown',
            message: error.message ?? '',
            retryable: error.retryable ?? false,
          },
          attempts: run.attempts,
          deadLettered: error.deadLettered ?? false,
        },
      };
    case 'cancelled':
      return {
        event: 'cancelled',
        data: { runId: run.runId, reason: error.message ?? 'cancelled' },
      };
    default:
      return undefined;
  }
}

const isTerminalStatus = (run: RunRecord) => TERMINAL_STATUSES.includes(run.status);

/**
 * GET /v1/runs/:runId/events: the run's Redis stream as Server-Sent Events, resumable with
 * Last-Event-ID, kept alive with comments, ended after the terminal event. A client never hangs
 * on a finished run: when the Redis stream has no terminal entry (expired, or Redis failed while
 * the run ran) the terminal event is rebuilt from Postgres.
 */
@Injectable()
export class RunEventsService implements OnModuleDestroy {
  private readonly log = new Logger(RunEventsService.name);
  private readonly sessions = new Set<AbortController>();
  private readonly open = openStreams();

  constructor(
    private readonly query: RunQueryService,
    private readonly runs: RunRepository,
    private readonly runStream: RunEventStream,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** Ends every open stream so the HTTP server can close (clients reconnect with Last-Event-ID elsewhere). */
  onModuleDestroy(): void {
    for (const s of this.sessions) s.abort();
  }

  async stream(
    tenantId: string,
    runId: string,
    lastEventId: string | undefined,
    res: Response,
  ): Promise<void> {
    const afterId = parseLastEventId(lastEventId);
    const run = await this.query.record(tenantId, runId);

    const session = new AbortController();
    const onClose = () => session.abort();
    res.on('close', onClose);
    this.sessions.add(session);
    this.open.inc();
    const writer = new SseWriter(res);
    writer.open(RETRY_MS);
    let terminalSent = false;
    const send = async (entry: RunStreamEntry) => {
      await writer.event(entry.event, entry.data, entry.id);
      if (isTerminalRunEvent(entry.event)) terminalSent = true;
    };
    const sendSynthesized = async (stored: RunRecord) => {
      const terminal = synthesizeTerminalEvent(stored);
      if (terminal && !writer.closed) await writer.event(terminal.event, terminal.data);
    };

    // Postgres says terminal but no terminal entry arrived for a whole keep-alive period: stop waiting.
    const follow = new AbortController();
    session.signal.addEventListener('abort', () => follow.abort(), { once: true });
    let stalled: RunRecord | undefined;
    let terminalSeenAt: number | undefined;
    let checking = false;
    const watchdog = async () => {
      if (checking || terminalSent || follow.signal.aborted) return;
      checking = true;
      try {
        const current = await this.runs.findById(tenantId, runId);
        if (!current || !isTerminalStatus(current)) return;
        terminalSeenAt ??= Date.now();
        if (Date.now() - terminalSeenAt >= this.config.SSE_KEEPALIVE_MS) {
          stalled = current;
          follow.abort();
        }
      } catch {
        // Postgres away: keep streaming what Redis has
      } finally {
        checking = false;
      }
    };
    const keepAlive = setInterval(
      () => {
        void writer.comment('keep-alive');
        void watchdog();
      },
      Math.max(10, this.config.SSE_KEEPALIVE_MS),
    );

    try {
      if (isTerminalStatus(run)) {
        await this.replayBacklog(runId, afterId, send, session.signal);
        if (!terminalSent) await sendSynthesized(run);
        return;
      }
      for await (const entry of this.runStream.follow(runId, {
        signal: follow.signal,
        ...(afterId === undefined ? {} : { afterId }),
      })) {
        await send(entry);
        if (writer.closed) break;
        if (terminalSent) {
          // A dead-letter replay reopens a failed run: its stream goes on after the `failed` entry.
          if (entry.event === 'failed' && (await this.reopenedAfter(tenantId, runId, entry))) {
            terminalSent = false;
            continue;
          }
          break;
        }
      }
      if (!terminalSent && stalled) await sendSynthesized(stalled);
    } catch (err) {
      if (!session.signal.aborted) {
        // Ending lets the client reconnect with Last-Event-ID; nothing is lost.
        this.log.warn(`run event stream of ${runId} ended early: ${(err as Error).message}`);
      }
    } finally {
      clearInterval(keepAlive);
      follow.abort();
      res.off('close', onClose);
      this.sessions.delete(session);
      this.open.dec();
      writer.end();
    }
  }

  /**
   * Whether the run went on after this `failed` entry, i.e. a dead-letter replay reopened it:
   * entries follow it in the stream, or the run is running again with more attempts than the
   * failure counted (the executor's started event of the replay can reach the projection before
   * its first stream entry). Errors answer false: the stream ends as it would have.
   */
  private async reopenedAfter(
    tenantId: string,
    runId: string,
    failed: RunStreamEntry,
  ): Promise<boolean> {
    try {
      if ((await this.runStream.range(runId, failed.id, 1)).length > 0) return true;
      const current = await this.runs.findById(tenantId, runId);
      const failedAttempts = (failed.data as { attempts?: unknown } | null)?.attempts;
      return (
        current !== null &&
        !isTerminalStatus(current) &&
        typeof failedAttempts === 'number' &&
        current.attempts > failedAttempts
      );
    } catch {
      return false;
    }
  }

  /** Every stored entry after `afterId`, page by page. Redis errors end the replay (the caller falls back to Postgres). */
  private async replayBacklog(
    runId: string,
    afterId: string | undefined,
    send: (e: RunStreamEntry) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    let cursor = afterId;
    try {
      for (;;) {
        const page = await this.runStream.range(runId, cursor, BACKLOG_PAGE);
        for (const entry of page) {
          if (signal.aborted) return;
          await send(entry);
          cursor = entry.id;
        }
        if (page.length < BACKLOG_PAGE) return;
      }
    } catch (err) {
      this.log.warn(`reading the run stream of ${runId} failed: ${(err as Error).message}`);
    }
  }
}
