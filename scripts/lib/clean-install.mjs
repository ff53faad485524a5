#!/usr/bin/env node
// `npm ci`, with one known failure handled: the npm registry this project's machines reach answers
// 404 for other platforms' native builds (`@swc/core-darwin-arm64`, `@turbo/windows-64`...), so
// npm leaves them out of package-lock.json, and then `npm ci` refuses the lock as "not in sync"
// (the same symptom as npm/cli#4828). When every package it names as missing is such an optional
// platform build listed in the lock, the lock is fine for this machine: `npm install --no-save`
// installs exactly the locked versions without rewriting the lock. Any other failure stays one.
//
//   node scripts/lib/clean-install.mjs        (used by .ci/run and `npm start`)

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NPM_FLAGS = ['--no-audit', '--no-fund'];

/**
 * Runs a command, echoing its output as it comes, and resolves with its exit code and output.
 * @param {string} cmd @param {string[]} args @param {string} cwd
 * @returns {Promise<{code: number, output: string}>}
 */
function runEchoed(cmd, args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      output += d;
      process.stderr.write(d);
    });
    child.once('error', (err) => resolve({ code: 127, output: err.message }));
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/**
 * The packages `npm ci` reported missing from the lock that are NOT optional dependencies of a
 * locked package: the ones that mean the lock really is out of date.
 * @param {string} npmOutput what `npm ci` printed
 * @param {{packages?: Record<string, {optionalDependencies?: Record<string, string>}>}} lock
 * @returns {{missing: string[], unexplained: string[]}}
 */
export function explainMissing(npmOutput, lock) {
  const missing = [
    ...npmOutput.matchAll(/Missing: ((?:@[^/\s]+\/)?[^@\s]+)@\S* from lock file/g),
  ].map((m) => m[1] ?? '');
  const optional = new Set(
    Object.values(lock.packages ?? {}).flatMap((p) => Object.keys(p.optionalDependencies ?? {})),
  );
  return { missing, unexplained: missing.filter((name) => !optional.has(name)) };
}

/**
 * Installs node_modules from package-lock.json in `cwd`; resolves with the exit code (0: ok).
 * @param {{cwd?: string, log?: (line: string) => void}} [opts]
 */
export async function cleanInstall({ cwd = root, log = (line) => console.error(line) } = {}) {
  const ci = await runEchoed('npm', ['ci', ...NPM_FLAGS], cwd);
  if (ci.code === 0) return 0;
  const lock = JSON.parse(readFileSync(path.join(cwd, 'package-lock.json'), 'utf8'));
  const { missing, unexplained } = explainMissing(ci.output, lock);
  if (!missing.length || unexplained.length) {
    if (unexplained.length)
      log(
        `clean-install: package-lock.json lacks ${unexplained.join(', ')}: run npm install and commit the lock`,
      );
    return ci.code;
  }
  log(
    `clean-install: npm ci rejected the lock only for ${missing.length} other-platform optional builds ` +
      `(${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}), which this registry does not serve; ` +
      'installing the locked versions with npm install --no-save instead',
  );
  const install = await runEchoed('npm', ['install', '--no-save', ...NPM_FLAGS], cwd);
  return install.code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await cleanInstall();
}
