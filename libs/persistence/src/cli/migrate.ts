#!/usr/bin/env node
import { migrate } from '../migrate';

const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/aob';

migrate(url).then(
  (r) => {
    const db = new URL(url).pathname.slice(1);
    process.stdout.write(
      JSON.stringify({ database: db, createdDatabase: r.createdDatabase, applied: r.applied }) +
        '\n',
    );
  },
  (err: unknown) => {
    process.stderr.write(`migrate failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
