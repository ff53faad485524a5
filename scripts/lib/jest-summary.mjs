#!/usr/bin/env node
// Turns Jest's --json report into the one line CI ends with: `tests: N passed, N failed`.
//
//   node scripts/lib/jest-summary.mjs [reports/jest.json]
//
// Prints the failing tests (to stderr) and then the summary line (to stdout, last).
// Exit code: 0 all passed; 1 a test or suite failed; 2 no usable report or no test ran, so a run
// that crashed before Jest wrote its report, or that matched no test, can never look green.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

/**
 * @typedef {object} JestSummary
 * @property {number} passed
 * @property {number} failed tests that failed, plus suites that failed without a failing test
 *   (a suite that threw while loading, or in a hook, runs no test but must count)
 * @property {number} skipped pending and todo tests
 * @property {number} brokenSuites the suites counted in `failed` without a failing test
 * @property {string[]} failures `<file> › <test>` of each failure, suites included
 * @property {string} line `tests: N passed, N failed` (`, N skipped` when some were)
 */

/**
 * The first line of a suite's failure message that says something: Jest's JSON keeps the
 * formatted message (`● Test suite failed to run`, then the error), sometimes with colours.
 * @param {unknown} message
 */
function firstReason(message) {
  return stripVTControlCharacters(String(message ?? ''))
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('●'));
}

/**
 * @param {unknown} report the parsed contents of Jest's `--json --outputFile`
 * @returns {JestSummary}
 */
export function summarizeJestReport(report) {
  if (typeof report !== 'object' || report === null || typeof report.numPassedTests !== 'number') {
    throw new Error('not a Jest JSON report (numPassedTests missing)');
  }
  const r = /** @type {Record<string, any>} */ (report);
  const cwd = process.cwd();
  const rel = (/** @type {string} */ file) => (file ? path.relative(cwd, file) : '(unknown file)');
  const failures = [];
  let brokenSuites = 0;
  if (Array.isArray(r.testResults)) {
    for (const suite of r.testResults) {
      const failing = (suite.assertionResults ?? []).filter((a) => a.status === 'failed');
      for (const a of failing) failures.push(`${rel(suite.name)} › ${a.fullName ?? a.title}`);
      const suiteFailed = suite.status === 'failed' || Boolean(suite.testExecError);
      if (suiteFailed && failing.length === 0) {
        brokenSuites += 1;
        const why = firstReason(suite.testExecError?.message ?? suite.message);
        failures.push(`${rel(suite.name)} › (suite failed to run${why ? `: ${why}` : ''})`);
      }
    }
  } else {
    brokenSuites = r.numRuntimeErrorTestSuites ?? 0;
  }
  const passed = r.numPassedTests;
  const failed = (r.numFailedTests ?? 0) + brokenSuites;
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  const line = `tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
  return { passed, failed, skipped, brokenSuites, failures, line };
}

/**
 * Reads a report file and summarizes it.
 * @param {string} file
 * @returns {JestSummary}
 */
export function summarizeJestReportFile(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `no Jest report at ${file} (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  let report;
  try {
    report = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON (did Jest crash while writing it?)`);
  }
  return summarizeJestReport(report);
}

function main() {
  const file = process.argv[2] ?? 'reports/jest.json';
  let summary;
  try {
    summary = summarizeJestReportFile(file);
  } catch (err) {
    console.error(`jest-summary: ${err instanceof Error ? err.message : String(err)}`);
    console.log('tests: 0 passed, 0 failed');
    return 2;
  }
  const MAX_LISTED = 40;
  if (summary.failures.length) {
    console.error(`failed (${summary.failures.length}):`);
    for (const f of summary.failures.slice(0, MAX_LISTED)) console.error(`  ✕ ${f}`);
    if (summary.failures.length > MAX_LISTED) {
      console.error(`  … and ${summary.failures.length - MAX_LISTED} more (see ${file})`);
    }
  }
  if (summary.passed + summary.failed === 0) console.error('jest-summary: no test ran');
  console.log(summary.line);
  if (summary.failed > 0) return 1;
  return summary.passed === 0 ? 2 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = main();
}
