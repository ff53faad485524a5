import { Inject, Injectable } from '@nestjs/common';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Principal } from '@aob/auth';
import { notFound } from '@aob/errors';
import { JETSTREAM, replayDeadLetter } from '@aob/events';
import {
  DeadLetterRepository,
  type DeadLetterRecord,
  type DeadLetterScope,
} from '@aob/persistence';
import { decodeCursor, encodeCursor } from '../common/page-cursor';
import {
  toDeadLetterView,
  type BulkReplayInput,
  type DeadLetterListQueryInput,
  type DeadLetterView,
} from './dead-letter-view';

export interface DeadLetterPage {
  items: DeadLetterView[];
  nextCursor?: string;
}

/** Entries one bulk replay takes at most; callers repeat for more. */
const BULK_REPLAY_LIMIT = 1_000;

/** A caller sees its tenant's entries; an admin of tenant `*` sees all, those without a tenant too. */
const scopeOf = (p: Principal): DeadLetterScope =>
  p.platformAdmin ? { allTenants: true } : { tenantId: p.tenantId };

/** `/v1/dlq`: reads, discards and replays of dead letters (the dlq-replayer captures them). */
@Injectable()
export class DeadLetterService {
  constructor(
    private readonly repo: DeadLetterRepository,
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
  ) {}

  async list(p: Principal, q: DeadLetterListQueryInput): Promise<DeadLetterPage> {
    const { items, hasMore } = await this.repo.list(scopeOf(p), {
      limit: q.limit,
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.subject === undefined ? {} : { subject: q.subject }),
      ...(q.cursor === undefined ? {} : { after: decodeCursor(q.cursor) }),
    });
    const last = items[items.length - 1];
    return {
      items: items.map(toDeadLetterView),
      ...(hasMore && last
        ? { nextCursor: encodeCursor({ createdAt: last.cursorTs, id: last.id }) }
        : {}),
    };
  }

  async get(p: Principal, id: string): Promise<DeadLetterView> {
    const entry = await this.repo.get(scopeOf(p), id);
    if (!entry) throw notFound(`dead letter ${id}`);
    return toDeadLetterView(entry);
  }

  async replay(p: Principal, id: string): Promise<DeadLetterView> {
    const entry = await this.repo.replay(scopeOf(p), id, (e, n) => this.publish(e, n));
    if (!entry) throw notFound(`dead letter ${id}`);
    return toDeadLetterView(entry);
  }

  async discard(p: Principal, id: string): Promise<void> {
    if (!(await this.repo.discard(scopeOf(p), id))) throw notFound(`dead letter ${id}`);
  }

  async replayMany(p: Principal, f: BulkReplayInput): Promise<{ replayed: number }> {
    const scope = scopeOf(p);
    const ids = await this.repo.replayableIds(scope, f, BULK_REPLAY_LIMIT);
    let replayed = 0;
    for (const id of ids) {
      // Discarded or gone since listed: skipped; a publish failure stops the batch (503).
      const entry = await this.repo
        .replay(scope, id, (e, n) => this.publish(e, n))
        .catch((err: unknown) => {
          if ((err as { code?: string }).code === 'Conflict') return null;
          throw err;
        });
      if (entry) replayed++;
    }
    return { replayed };
  }

  private publish(entry: DeadLetterRecord, replay: number) {
    return replayDeadLetter(this.js, entry.id, replay, {
      subject: entry.subject,
      headers: entry.headers,
      data: entry.data ?? new Uint8Array(),
    });
  }
}
