#!/usr/bin/env node
// `npm run provision`: creates or updates the catalog's JetStream streams and consumers.
import { loadConfig } from '@aob/config';
import { jetstreamManager } from '@nats-io/jetstream';
import { z } from 'zod';
import { connectNats } from '../jetstream/connect-nats';
import { provisionJetStream } from '../jetstream/provision-jetstream';

const envSchema = z.object({ NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222') });

async function main(): Promise<void> {
  const { NATS_URL } = loadConfig(envSchema);
  const nc = await connectNats({ url: NATS_URL, name: 'aob-provision' });
  try {
    const jsm = await jetstreamManager(nc);
    const report = await provisionJetStream(jsm);
    process.stdout.write(`${JSON.stringify({ natsUrl: NATS_URL, ...report })}\n`);
  } finally {
    await nc.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`provision failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
