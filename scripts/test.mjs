#!/usr/bin/env node
// `npm test`: the one test command, the same locally and in CI.
//
//   npm test [-- --no-build] [-- <jest args>]     e.g. npm test -- libs/events
//
// 1. makes sure PostgreSQL, Redis and NATS answer (starting the local ones that are down);
// 2. builds every package (e2e tests spawn apps/*/dist/main.js); --no-build skips it;
// 3. runs all three Jest projects, writing the machine-readable report to reports/jest.json
//    (what .ci/run counts) besides Jest's usual output, and exits with Jest's code.

import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureServices } from './ensure-services.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPORT = path.join('reports', 'jest.json');

/** @param {string} cmd @param {string[]} args @returns {Promise<number>} */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit' });
    child.once('error', (err) => {
      console.error(`test: cannot run ${cmd}: ${err.message}`);
      resolve(127);
    });
    child.once('exit', (code, signal) =>
      resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)),
    );
  });
}

async function main() {
  const args = process.argv.slice(2);
  const skipBuild = args.includes('--no-build');
  const jestArgs = args.filter((a) => a !== '--no-build');

  try {
    await ensureServices({ log: (line) => console.error(`services: ${line}`) });
  } catch (err) {
    console.error(`test: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  let buildFailed = false;
  if (!skipBuild) {
    const code = await run('npm', ['run', 'build']);
    // Unit and integration tests do not need dist/, so they still run and report; the build
    // failure still fails the command.
    if (code !== 0) {
      buildFailed = true;
      console.error(
        `test: \`npm run build\` failed (exit ${code}); running the tests anyway, e2e tests will fail`,
      );
    }
  }

  // A stale report from an earlier run must never be counted for this one.
  rmSync(path.join(root, REPORT), { force: true });
  mkdirSync(path.join(root, 'reports'), { recursive: true });
  const jest = path.join(root, 'node_modules', '.bin', 'jest');
  // In CI a suite that leaks a socket would keep Jest alive until the CI timeout, and the report
  // would be lost with it; locally the hang is left visible so the leak gets fixed.
  const ciArgs = process.env.CI ? ['--forceExit'] : [];
  const code = await run(jest, [
    '--ci',
    '--runInBand=false',
    '--maxWorkers=2',
    '--json',
    `--outputFile=${REPORT}`,
    ...ciArgs,
    ...jestArgs,
  ]);
  if (buildFailed && code === 0) {
    console.error('test: all tests passed, but the build failed (see above)');
    return 1;
  }
  return code;
}

process.exitCode = await main();
