// The demo page and the browser client (public/) in headless Chromium, against the Worker
// under `wrangler dev` and its local R2 store. The page is served by the Worker, so it
// talks to the signer and to the store (the same host's /cdn-cgi/local/r2/s3/) from one
// origin; the CORS tests put a page at other origins through a proxy.
//
// Run: PATH=$PWD/node_modules/.bin:$PATH node --test --test-concurrency=1 tests/e2e/browser.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  ARTIFACTS,
  MiB,
  newPage,
  originProxy,
  randomFile,
  recordParts,
  scratchDir,
  storedObject,
  useBrowser,
} from './browser.mjs';
import { callApi, jwtClaims, objectStore, signJwt, useWorker } from './harness.mjs';

const worker = useWorker();
const chromium = useBrowser();
const files = scratchDir();

// The default profile goes multipart at 100 MiB; the demo asks for parts from this size.
const MULTIPART_ABOVE = 8 * MiB;
const PART_SIZE = 8 * MiB; // the default profile's part size
const UPLOAD_TIMEOUT_MS = 180_000;

test('the demo page uploads three files at once and the store holds the bytes of each', async (t) => {
  const sources = [
    randomFile(files, 'one-kib.bin', 1024),
    randomFile(files, 'ten-mib.bin', 10 * MiB),
    randomFile(files, 'sixty-mib.bin', 60 * MiB),
  ];
  const page = await newPage(chromium.browser);
  const parts = recordParts(page);
  await openDemo(page, `?multipartAbove=${MULTIPART_ABOVE}`);

  const started = Date.now();
  await page.setInputFiles('#file-input', sources.map((s) => s.path));
  const rows = await Promise.all(sources.map((s) => finalRow(page, s.name)));
  const seconds = (Date.now() - started) / 1000;
  const mib = sources.reduce((total, s) => total + s.size, 0) / MiB;
  t.diagnostic(`${mib.toFixed(1)} MiB in 3 files uploaded in ${seconds.toFixed(1)} s`);

  for (const [source, row] of sources.map((s, i) => [s, rows[i]])) {
    assert.equal(row.state, 'done', `${source.name}: ${row.result}\n${page.logLines.join('\n')}`);
    assert.equal(row.bar, 100, `${source.name}: progress bar value`);
    assert.equal(row.percent, '100 %', `${source.name}: percent shown`);
    assert.match(row.result, new RegExp(`Stored as ${escapeRegExp(row.key)}`));
    assert.deepEqual(await storedObject(worker, row.key), { size: source.size, sha256: source.sha256 }, source.name);
  }
  assert.equal(await page.locator('#overall-bar').evaluate((bar) => bar.value), 100);

  // The two larger files went in parts: 2 and 8 of them, each sent once.
  const uploadIds = new Set(parts.sent.map((p) => p.uploadId));
  assert.equal(uploadIds.size, 2, 'two multipart uploads');
  const counts = [...uploadIds].map((id) => parts.sent.filter((p) => p.uploadId === id).length).sort((a, b) => a - b);
  assert.deepEqual(counts, [2, 8]);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const screenshot = path.join(ARTIFACTS, 'demo-three-files-done.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  t.diagnostic(`screenshot: ${path.relative(process.cwd(), screenshot)}`);
  await page.context().close();
});

test('a paused multipart upload resumes after a reload and sends only the parts the store lacks', async (t) => {
  const source = randomFile(files, 'resumable.bin', 40 * MiB); // 5 parts
  const partCount = Math.ceil(source.size / PART_SIZE);
  const page = await newPage(chromium.browser);
  const parts = recordParts(page);
  const partLists = recordRequests(page, 'GET', '/v1/multipart/parts');
  await throttleUploads(page, 16 * MiB); // an 8 MiB part takes half a second
  await openDemo(page, `?multipartAbove=${MULTIPART_ABOVE}&concurrency=1`);

  // Pause once two parts are stored.
  await page.setInputFiles('#file-input', source.path);
  await untilPartsStored(page, source.name, parts, 2);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'demo-uploading.png'), fullPage: true });
  await uploadRow(page, source.name).locator('[data-action=pause]').click();
  await page.locator(`${rowSelector(source.name)}[data-state=paused]`).waitFor();
  const keyBefore = await uploadRow(page, source.name).getAttribute('data-key');
  const storedBefore = stored(parts);
  const sentBefore = parts.sent.length;
  assert.ok(storedBefore.length < partCount, 'paused before the last part');

  // Reload: the page lists the unfinished upload; picking the file again resumes it.
  parts.clear();
  await page.reload();
  await page.waitForFunction(() => /^Uploading as /.test(document.querySelector('#credential-status').textContent));
  await page.locator(`#unfinished-list li[data-name="${source.name}"]`).waitFor();
  await page.setInputFiles('#file-input', source.path);
  const row = await finalRow(page, source.name);

  assert.equal(row.state, 'done', `${row.result}\n${page.logLines.join('\n')}`);
  assert.equal(row.key, keyBefore, 'the same object');
  assert.equal(partLists.length, 1, 'asked the signer once which parts the store has');
  const sentAfter = parts.sent.map((p) => p.partNumber);
  for (const number of storedBefore) {
    assert.ok(!sentAfter.includes(number), `part ${number} was stored before the reload and sent again`);
  }
  const all = [...new Set([...storedBefore, ...sentAfter])].sort((a, b) => a - b);
  assert.deepEqual(all, range(1, partCount), 'every part sent, before or after the reload');
  assert.equal(sentAfter.length, partCount - storedBefore.length, 'each missing part sent once');
  assert.equal(row.resumedParts, String(storedBefore.length));
  assert.deepEqual(await storedObject(worker, row.key), { size: source.size, sha256: source.sha256 });
  t.diagnostic(
    `parts stored before the pause: ${storedBefore.join(', ')} (${sentBefore} part requests); ` +
      `sent after the reload: ${sentAfter.join(', ')}; ` +
      (row.resumedFrom === 'store'
        ? 'the store listed the parts it had'
        : 'the store could not list its parts, so the client used the ETags it remembered'),
  );
  await page.context().close();
});

test('a part request that fails once is sent again and the upload completes', async (t) => {
  const source = randomFile(files, 'flaky-part.bin', 20 * MiB); // 3 parts
  const page = await newPage(chromium.browser);
  const parts = recordParts(page);
  let refused = 0;
  await page.route(
    (url) => url.searchParams.get('partNumber') === '2' && url.searchParams.has('uploadId'),
    (route) => {
      if (refused > 0) return route.continue();
      refused += 1;
      return route.abort('connectionreset');
    },
  );
  await openDemo(page, `?multipartAbove=${MULTIPART_ABOVE}&retryDelayMs=200`);

  await page.setInputFiles('#file-input', source.path);
  const row = await finalRow(page, source.name);

  assert.equal(row.state, 'done', `${row.result}\n${page.logLines.join('\n')}`);
  assert.equal(refused, 1);
  assert.deepEqual(parts.failed.map((p) => p.partNumber), [2], 'the refused request');
  assert.deepEqual(parts.sent.map((p) => p.partNumber).sort(), [1, 2, 2, 3], 'part 2 was sent twice');
  assert.deepEqual(await storedObject(worker, row.key), { size: source.size, sha256: source.sha256 });
  t.diagnostic(`part 2 failed with ${parts.failed[0].error} and was sent again`);
  await page.context().close();
});

test('a single PUT whose answer is lost is sent again, and the 412 that follows says the object is most likely stored', async (t) => {
  const source = randomFile(files, 'lost-answer.bin', 64 * 1024);
  const page = await newPage(chromium.browser);
  let lost = 0;
  // The first PUT reaches the store, which stores the file; the page never hears back.
  await page.route(
    (url) => url.searchParams.has('X-Amz-Signature') && !url.searchParams.has('uploadId'),
    async (route) => {
      if (route.request().method() !== 'PUT' || lost > 0) return route.continue();
      lost += 1;
      const answer = await route.fetch();
      assert.equal(answer.status(), 200, 'the store took the first try');
      return route.abort('connectionreset');
    },
  );
  await openDemo(page, '?retryDelayMs=200');

  await page.setInputFiles('#file-input', source.path);
  const row = await finalRow(page, source.name);

  assert.equal(lost, 1);
  assert.equal(row.state, 'failed', row.result);
  assert.match(row.result, /answer was lost/);
  assert.match(row.result, /most likely this file/);
  assert.deepEqual(await storedObject(worker, row.key), { size: source.size, sha256: source.sha256 });
  t.diagnostic(row.result);
  await page.context().close();
});

test('a part answer without a readable ETag fails the upload with a message about the bucket CORS rule', async () => {
  const source = randomFile(files, 'no-etag.bin', 9 * MiB); // 2 parts
  const page = await newPage(chromium.browser);
  // The store's answer as a browser sees it when the bucket's CORS rule does not expose ETag.
  await page.route(
    (url) => url.searchParams.has('partNumber') && url.searchParams.has('uploadId'),
    (route) => route.fulfill({ status: 200, body: '' }),
  );
  await openDemo(page, `?multipartAbove=${MULTIPART_ABOVE}`);

  await page.setInputFiles('#file-input', source.path);
  const row = await finalRow(page, source.name);

  assert.equal(row.state, 'failed', row.result);
  assert.match(row.result, /CORS rule/);
  assert.match(row.result, /expose the ETag header/);
  await page.context().close();
});

test('a file the profile refuses shows as failed, and the overall bar still reaches 100 % with the others', async () => {
  const fine = randomFile(files, 'fine.bin', 4096);
  const refused = randomFile(files, 'script.sh', 100); // a shell script: not in the profile
  const page = await newPage(chromium.browser);
  await openDemo(page);

  await page.setInputFiles('#file-input', [fine.path, refused.path]);
  const [fineRow, refusedRow] = await Promise.all([finalRow(page, fine.name), finalRow(page, refused.name)]);

  assert.equal(fineRow.state, 'done', fineRow.result);
  assert.equal(refusedRow.state, 'failed', refusedRow.result);
  assert.match(refusedRow.result, /content type/i);
  await page.waitForFunction(() => document.querySelector('#overall-bar').value === 100, null, { timeout: 10_000 });
  assert.match(await page.locator('#overall-stats').textContent(), /^2 files · 1 failed · /);
  await page.context().close();
});

test('cancelling a multipart upload aborts it in the store', async () => {
  const source = randomFile(files, 'cancelled.bin', 40 * MiB);
  const page = await newPage(chromium.browser);
  const parts = recordParts(page);
  const aborts = recordResponses(page, 'POST', '/v1/multipart/abort');
  await throttleUploads(page, 16 * MiB);
  await openDemo(page, `?multipartAbove=${MULTIPART_ABOVE}&concurrency=1`);

  await page.setInputFiles('#file-input', source.path);
  await untilPartsStored(page, source.name, parts, 1);
  const key = await uploadRow(page, source.name).getAttribute('data-key');
  await uploadRow(page, source.name).locator('[data-action=cancel]').click();
  const row = await finalRow(page, source.name);

  assert.equal(row.state, 'canceled');
  await until(() => aborts.length > 0, 'POST /v1/multipart/abort');
  assert.deepEqual(aborts, [204]);
  assert.deepEqual(await objectStore(worker).listObjects(key), [], 'no object under the key');
  const remembered = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('edge-presigner:v1:')));
  assert.deepEqual(remembered, [], 'nothing left to resume');
  await page.context().close();
});

test('without the development login the page asks for a bearer token and uploads with it', async () => {
  const source = randomFile(files, 'pasted-token.txt', 2048);
  const page = await newPage(chromium.browser);
  // What a deployed Worker answers: the development login does not exist there.
  await page.route(worker.url('/v1/dev/token'), (route) =>
    route.fulfill({
      status: 404,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'not_found', message: 'no route /v1/dev/token' } }),
    }),
  );
  await page.goto(worker.url('/'));
  await page.locator('#token-form').waitFor();

  await page.fill('#token-input', await signJwt(jwtClaims('pasted-user', { exp: Math.floor(Date.now() / 1000) + 600 })));
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction(() => /^Uploading as pasted-user/.test(document.querySelector('#credential-status').textContent));
  await page.setInputFiles('#file-input', source.path);
  const row = await finalRow(page, source.name);

  assert.equal(row.state, 'done', row.result);
  assert.match(row.key, /^users\/pasted-user\//);
  assert.deepEqual(await storedObject(worker, row.key), { size: source.size, sha256: source.sha256 });
  await page.context().close();
});

test('the client refuses a concurrency, maxAttempts or retry delay that could never send a byte', async () => {
  const page = await newPage(chromium.browser);
  await openDemo(page);

  const errors = await page.evaluate(async () => {
    const { Uploader } = await import('/edge-presigner.js');
    const getToken = async () => 'unused';
    const tried = [{ concurrency: 0 }, { concurrency: -1 }, { maxAttempts: 0 }, { retryDelayMs: 1.5 }, { signBatchSize: '5' }];
    return tried.map((options) => {
      try {
        new Uploader({ getToken, ...options });
        return 'accepted';
      } catch (error) {
        return `${error.name}: ${error.message}`;
      }
    });
  });

  assert.equal(errors.length, 5);
  const names = ['concurrency', 'concurrency', 'maxAttempts', 'retryDelayMs', 'signBatchSize'];
  errors.forEach((error, i) => assert.match(error, new RegExp(`^RangeError: ${names[i]} must be a whole number`)));
  await page.context().close();
});

test('the Worker serves the client module and its types, and not the package manifest', async () => {
  const client = await callApi(worker, '/edge-presigner.js', { method: 'GET' });
  assert.equal(client.status, 200);
  assert.match(client.headers.get('content-type'), /^text\/javascript/);
  assert.match(client.text, /export class Uploader /);
  const types = await callApi(worker, '/edge-presigner.d.ts', { method: 'GET' });
  assert.equal(types.status, 200);
  assert.match(types.headers.get('content-type'), /^text\/plain/);
  for (const hidden of ['/package.json', '/_headers', '/.assetsignore']) {
    assert.equal((await callApi(worker, hidden, { method: 'GET' })).status, 404, hidden);
  }
});

// The Worker allows http://localhost:8787 and http://127.0.0.1:8787 (wrangler.toml), while
// the harness runs it on a random port. A proxy puts a page at those origins for the browser.
const ALLOWED_ORIGIN = 'http://localhost:8787';
const OTHER_ORIGIN = 'http://localhost:8799';

test('a preflight from an allowed origin gets CORS headers and the browser lets the call through', async () => {
  const direct = await preflight(ALLOWED_ORIGIN);
  assert.equal(direct.status, 204);
  assert.equal(direct.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
  assert.match(direct.headers.get('access-control-allow-methods'), /\bPOST\b/);
  assert.match(direct.headers.get('access-control-allow-headers'), /\bauthorization\b/i);
  assert.match(direct.headers.get('access-control-allow-headers'), /\bcontent-type\b/i);
  assert.match(direct.headers.get('vary'), /\bOrigin\b/i);

  const { outcome, exchanges } = await crossOriginCreateUpload(ALLOWED_ORIGIN);
  assert.equal(outcome.status, 201, JSON.stringify(outcome));
  assert.equal(outcome.body.type, 'single');
  const [options, post] = exchanges;
  assert.equal(options.method, 'OPTIONS', 'the browser sent a preflight first');
  assert.equal(options.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  assert.equal(post.method, 'POST');
  assert.equal(post.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
});

test('a preflight from another origin gets no CORS headers and the browser blocks the call', async () => {
  const direct = await preflight(OTHER_ORIGIN);
  const corsHeaders = [...direct.headers.keys()].filter((name) => name.startsWith('access-control-'));
  assert.deepEqual(corsHeaders, []);

  const { outcome, exchanges } = await crossOriginCreateUpload(OTHER_ORIGIN);
  assert.equal(outcome.error, 'TypeError', JSON.stringify(outcome));
  assert.deepEqual(exchanges.map((e) => e.method), ['OPTIONS'], 'only the preflight reached the Worker');
  const answered = Object.keys(exchanges[0].headers).filter((name) => name.startsWith('access-control-'));
  assert.deepEqual(answered, []);
});

/** OPTIONS /v1/uploads as a browser at `origin` sends it before a POST with a credential. */
function preflight(origin) {
  return callApi(worker, '/v1/uploads', {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });
}

/**
 * A page at `origin` (served by a proxy, without Playwright's routing, which would answer
 * preflights itself) calls POST /v1/uploads on the Worker. Returns what the page saw and
 * the Worker's exchanges the proxy carried.
 */
async function crossOriginCreateUpload(origin) {
  const proxy = await originProxy({ [origin]: '<!doctype html><title>another site</title>' });
  const page = await newPage(chromium.browser, { proxy: { server: proxy.url } });
  try {
    await page.goto(`${origin}/`);
    const credential = await signJwt(jwtClaims('cors-test'));
    const outcome = await page.evaluate(
      async ({ url, credential }) => {
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
            body: JSON.stringify({ filename: 'cors.txt', contentType: 'text/plain', size: 4 }),
          });
          return { status: response.status, body: await response.json() };
        } catch (error) {
          return { error: error.name, message: error.message };
        }
      },
      { url: worker.url('/v1/uploads'), credential },
    );
    const exchanges = proxy.exchanges.filter((e) => new URL(e.url).pathname === '/v1/uploads');
    return { outcome, exchanges };
  } finally {
    await page.context().close();
    await proxy.close();
  }
}

// ---------------------------------------------------------------------------------------
// The demo page

/** Opens the demo page and waits until it holds a credential (the development login). */
async function openDemo(page, query = '') {
  await page.goto(worker.url(`/${query}`));
  await page.waitForFunction(() => /^Uploading as /.test(document.querySelector('#credential-status').textContent));
}

/** Waits until a file's row is done, failed or cancelled, and reads it. */
async function finalRow(page, name, timeout = UPLOAD_TIMEOUT_MS) {
  const handle = await page.waitForFunction(
    (fileName) => {
      const row = document.querySelector(`#uploads li.upload[data-name="${CSS.escape(fileName)}"]`);
      if (!['done', 'failed', 'canceled'].includes(row?.dataset.state)) return false;
      const result = row.querySelector('.upload-result').textContent;
      if (row.dataset.state === 'done' && !result) return false; // written a moment later
      return {
        state: row.dataset.state,
        key: row.dataset.key,
        bar: row.querySelector('.upload-bar').value,
        percent: row.querySelector('.upload-percent').textContent,
        result,
        resumedFrom: row.dataset.resumedFrom,
        resumedParts: row.dataset.resumedParts,
      };
    },
    name,
    { timeout, polling: 100 },
  );
  return handle.jsonValue();
}

function uploadRow(page, name) {
  return page.locator(rowSelector(name));
}

function rowSelector(name) {
  return `#uploads li.upload[data-name="${name}"]`;
}

/** Part numbers the store answered 200 for, in order. */
function stored(parts) {
  return parts.finished.filter((p) => p.status === 200).map((p) => p.partNumber);
}

/** Requests of `method` to `pathname` the page sends, as a growing list of URLs. */
function recordRequests(page, method, pathname) {
  const seen = [];
  page.on('request', (request) => {
    if (request.method() === method && new URL(request.url()).pathname === pathname) seen.push(request.url());
  });
  return seen;
}

/** Statuses of the answers to `method` `pathname` requests, as a growing list. */
function recordResponses(page, method, pathname) {
  const statuses = [];
  page.on('response', (response) => {
    const request = response.request();
    if (request.method() === method && new URL(request.url()).pathname === pathname) statuses.push(response.status());
  });
  return statuses;
}

async function until(condition, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Limits the page's upload speed (bytes per second), so a test can act between parts. */
async function throttleUploads(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
}

/** Waits until the store has answered `count` parts, failing at once if the upload does. */
async function untilPartsStored(page, name, parts, count, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  while (stored(parts).length < count) {
    const row = uploadRow(page, name);
    if ((await row.getAttribute('data-state')) === 'failed') {
      assert.fail(`the upload failed: ${await row.locator('.upload-result').textContent()}`);
    }
    if (Date.now() > deadline) assert.fail(`the store did not get ${count} parts in ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function range(first, last) {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
