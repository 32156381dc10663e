// End to end: contract fuzzing. schemathesis reads openapi.yaml, generates requests for
// every operation (valid ones, and invalid ones that break the document's schemas), sends
// them to the Worker under `wrangler dev` with the test API key, and checks every answer
// against the document: no 5xx, a documented status code, content type, headers and body.
//
// The `default` profile writes to SeaweedFS here, so the routes that call the store
// (multipart create, list, complete, abort) meet a real S3 server. The Worker allows a
// million signing requests a minute instead of wrangler.toml's 600: a long run sends
// thousands from one credential, and past the limit every answer would be the same 429
// (auth.test.mjs tests the limit itself).
//
// The work is done by scripts/contract, which this file calls with the Worker's URL; that
// script also runs longer by hand (README, "Contract fuzzing"). CONTRACT_MAX_EXAMPLES,
// CONTRACT_SEED and CONTRACT_EXTRA_ARGS (space-separated) change the run; scripts/contract
// sets them.
//
// Run: node --test --test-concurrency=1 tests/e2e/contract.test.mjs

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { ROOT, useSeaweedFS, useWorker } from './harness.mjs';

const seaweed = useSeaweedFS();
const worker = useWorker({
  seaweed,
  profiles: { default: { bucket: 'seaweed' } },
  rateLimit: 1_000_000,
});

const MAX_EXAMPLES = process.env.CONTRACT_MAX_EXAMPLES ?? '20';
const SEED = process.env.CONTRACT_SEED ?? '1';
const EXTRA_ARGS = (process.env.CONTRACT_EXTRA_ARGS ?? '').split(' ').filter(Boolean);
const TIMEOUT_MS = Number(process.env.CONTRACT_TIMEOUT_MS ?? 15 * 60 * 1000);

test('every answer to schemathesis-generated requests matches openapi.yaml', {
  timeout: TIMEOUT_MS,
}, async (t) => {
  const args = [
    path.join(ROOT, 'scripts/contract'),
    '--url', worker.baseUrl,
    '--max-examples', MAX_EXAMPLES,
    '--seed', SEED,
    '--', ...EXTRA_ARGS,
  ];
  const started = Date.now();
  const { code, output } = await run('bash', args);
  t.diagnostic(`schemathesis ran for ${Math.round((Date.now() - started) / 1000)} s`);
  process.stdout.write(`${output}\n`);
  assert.equal(code, 0, `schemathesis found failures (exit ${code}); its report is above`);
});

/** Runs a command to its end; resolves with its exit code and stdout and stderr as one. */
function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (text) => { output += text; });
    }
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code: code ?? signal, output }));
  });
}
