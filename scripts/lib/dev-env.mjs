// The local development secrets `npm start` hands to the apps, generated once per clone and kept
// in .aob/dev.env (gitignored, mode 600) so the key a developer copied keeps working across runs.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The variables kept in the file, and how a fresh value of each is made. */
const GENERATED = {
  // `aob_` marks an API key, as opposed to a JWT, for the gateway's bearer parsing.
  AOB_BOOTSTRAP_ADMIN_KEY: () => `aob_${randomBytes(32).toString('base64url')}`,
  AOB_SERVICE_KEY: () => `aob_svc_${randomBytes(32).toString('base64url')}`,
};

/**
 * Parses `KEY=value` lines; `#` comments and blank lines are skipped, values are taken verbatim.
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function parseEnvFile(text) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Reads `file`, adds any generated variable it lacks, and writes it back (mode 600, its folder
 * mode 700) only when something was added. Existing values are never replaced.
 * @param {string} file e.g. `<repo>/.aob/dev.env`
 * @returns {{ values: Record<string, string>, created: string[] }} `created`: the names generated now
 */
export function loadOrCreateDevEnv(file) {
  const values = existsSync(file) ? parseEnvFile(readFileSync(file, 'utf8')) : {};
  const created = [];
  for (const [name, make] of Object.entries(GENERATED)) {
    if (!values[name]) {
      values[name] = make();
      created.push(name);
    }
  }
  if (created.length) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const body = [
      '# Local development secrets for `npm start`, generated once. Never use them outside this machine.',
      ...Object.entries(values).map(([k, v]) => `${k}=${v}`),
      '',
    ].join('\n');
    writeFileSync(file, body, { mode: 0o600 });
  }
  // writeFileSync's mode applies only to a new file: tighten one created by hand as well.
  chmodSync(file, 0o600);
  return { values, created };
}
