#!/usr/bin/env node
// `npm run bench`: every benchmark section in scripts/bench/*.mjs, printed as one JSON document on
// stdout (progress goes to stderr). Each section measures against a baseline taken in the same run,
// so ratios stay meaningful on a noisy machine.
//   npm run bench -- backbone        only the named sections

import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bench');
const wanted = new Set(process.argv.slice(2));
const sections = readdirSync(dir)
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => f.replace(/\.mjs$/, ''))
  .filter((name) => wanted.size === 0 || wanted.has(name))
  .sort();

const result = {
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  at: new Date().toISOString(),
};
let failed = false;
for (const name of sections) {
  process.stderr.write(`bench: section ${name}\n`);
  try {
    const mod = await import(pathToFileURL(path.join(dir, `${name}.mjs`)).href);
    result[name] = await mod.run();
  } catch (err) {
    failed = true;
    result[name] = { error: String(err?.stack ?? err) };
  }
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
process.exit(failed ? 1 : 0);
