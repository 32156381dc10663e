// The real Uppy (@uppy/core 5.2.0 and @uppy/aws-s3 5.1.0, bundled with esbuild) uploads
// through the signer's companion routes under /s3/, in headless Chromium, against the
// Worker under `wrangler dev` and its local R2 store. tests/e2e/uppy/ holds the page and
// its script, configured as the README tells an Uppy user to.
//
// The page lives at http://localhost:8787, an origin wrangler.toml allows, served by the
// proxy of browser.mjs; the signer and the store are at the Worker's own origin
// (127.0.0.1 and a random port), so every call Uppy makes is a real cross-origin one.
//
// Run: PATH=$PWD/node_modules/.bin:$PATH node --test --test-concurrency=1 tests/e2e/uppy.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import { build } from 'esbuild';

import {
  MiB,
  newPage,
  originProxy,
  randomFile,
  recordParts,
  scratchDir,
  storedObject,
  useBrowser,
} from './browser.mjs';
import { ROOT, callApi, objectStore, useWorker } from './harness.mjs';

const worker = useWorker();
const chromium = useBrowser();
const files = scratchDir();

const PAGE_ORIGIN = 'http://localhost:8787';
const PAGE_DIR = path.join(ROOT, 'tests/e2e/uppy');
const SLOW = { timeout: 180_000 }; // for a test that uploads

// What @uppy/aws-s3 5 does with a file it sends in parts: parts of
// max(ceil(size / 10000), 5 MiB), the last one shorter. The signer does not choose.
const UPPY_MIN_PART_SIZE = 5 * MiB;

let pageHtml;
before(async () => {
  pageHtml = await buildPage();
});

test('Uppy uploads a 30 MiB file in parts through the /s3/ routes and the store holds its bytes', SLOW, async (t) => {
  const source = randomFile(files, 'thirty mib.bin', 30 * MiB);
  const { page, proxy, subject } = await openUppyPage(t);
  const parts = recordParts(page);
  const partSizes = recordPartSizes(page);

  await page.setInputFiles('#file-input', source.path);
  const [added] = await page.evaluate(() => window.uppyPage.files());
  assert.equal(added.meta.size, source.size, 'the file-added line put the size in the metadata');

  const started = Date.now();
  const result = await page.evaluate(() => window.uppyPage.upload());
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`30 MiB uploaded by Uppy in ${seconds.toFixed(1)} s`);
  assertSucceeded(result, page, proxy);

  // The key the signer chose, as Uppy got it from the complete call.
  const [file] = result.successful;
  const { key } = file.response.body;
  assert.match(key, new RegExp(`^users/${subject}/[0-9a-f-]{36}/thirty mib\\.bin$`));
  assert.equal(file.multipartKey, key, 'the key of POST /s3/multipart');
  const location = objectStore(worker).objectUrl(key);
  assert.equal(file.response.uploadURL, location, 'the location of the complete call');
  assert.deepEqual(await storedObject(worker, key), { size: source.size, sha256: source.sha256 });
  assert.deepEqual(await keysUnder(`users/${subject}/`), [key], 'one object for this subject');

  // Six parts of 5 MiB, each sent once, all of one upload, and each answered 200.
  const partCount = Math.ceil(source.size / UPPY_MIN_PART_SIZE);
  assert.equal(partCount, 6);
  assert.deepEqual(parts.sent.map((p) => p.partNumber).sort((a, b) => a - b), range(1, partCount));
  assert.equal(new Set(parts.sent.map((p) => p.uploadId)).size, 1, 'one multipart upload');
  assert.deepEqual(parts.failed, []);
  await until(() => parts.finished.length === partCount, 'every part answered');
  assert.ok(parts.finished.every((p) => p.status === 200), JSON.stringify(parts.finished));
  await until(() => partSizes.length === partCount, 'the size of every part');
  assert.deepEqual(partSizes.map((p) => p.bytes), Array(partCount).fill(UPPY_MIN_PART_SIZE));
  assert.deepEqual(
    result.events.partsUploaded.map((p) => p.partNumber).sort((a, b) => a - b),
    range(1, partCount),
    'Uppy reported each part uploaded',
  );

  // The companion calls Uppy made: create, one signature per part, complete; no abort.
  const calls = companionCalls(proxy);
  t.diagnostic(`signer calls: ${summarise(calls)}; preflights: ${preflights(proxy)}`);
  assert.deepEqual(calls.filter((c) => c.route === 'POST /s3/multipart').map((c) => c.status), [200]);
  const signs = calls.filter((c) => c.route === 'GET /s3/multipart/:uploadId/:partNumber');
  assert.deepEqual(signs.map((c) => c.status), Array(partCount).fill(200));
  const completes = calls.filter((c) => c.route === 'POST /s3/multipart/:uploadId/complete');
  assert.deepEqual(completes.map((c) => c.status), [200]);
  assert.deepEqual(calls.filter((c) => c.method === 'DELETE'), [], 'nothing aborted');
  assert.deepEqual(calls.filter((c) => c.route === 'GET /s3/params'), [], 'no single upload');
});

test('Uppy uploads a small file in one PUT signed by GET /s3/params', SLOW, async (t) => {
  const source = randomFile(files, 'small note.txt', 300 * 1024);
  const { page, proxy, subject } = await openUppyPage(t);
  const parts = recordParts(page);
  const storePuts = recordStorePuts(page);

  await page.setInputFiles('#file-input', source.path);
  const result = await page.evaluate(() => window.uppyPage.upload());
  assertSucceeded(result, page, proxy);

  const [key] = await keysUnder(`users/${subject}/`);
  assert.match(key, new RegExp(`^users/${subject}/[0-9a-f-]{36}/small note\\.txt$`));
  assert.deepEqual(await storedObject(worker, key), { size: source.size, sha256: source.sha256 });
  const stored = await objectStore(worker).getObject(key);
  await stored.arrayBuffer();
  assert.equal(stored.headers.get('content-type'), 'text/plain', 'the type Uppy sent as `type`');

  // Uppy knows the object by its URL: the signed URL without its query. It would take
  // the key from `fields.key`, which the signer leaves empty (it signs PUTs).
  const [file] = result.successful;
  assert.equal(file.response.uploadURL, objectStore(worker).objectUrl(key));
  t.diagnostic(`the key in Uppy's response: ${file.response.body.key}`);

  const calls = companionCalls(proxy);
  t.diagnostic(`signer calls: ${summarise(calls)}; preflights: ${preflights(proxy)}`);
  const params = calls.filter((c) => c.route === 'GET /s3/params');
  assert.deepEqual(params.map((c) => c.status), [200]);
  const query = new URL(params[0].url).searchParams;
  assert.equal(query.get('filename'), 'small note.txt');
  assert.equal(query.get('type'), 'text/plain');
  assert.equal(query.get('metadata[size]'), String(source.size));
  assert.deepEqual(calls.filter((c) => c.route.includes('/s3/multipart')), [], 'no multipart call');
  assert.deepEqual(parts.sent, [], 'no part PUTs');
  assert.deepEqual(storePuts.map((p) => p.status), [200], 'one PUT to the store');
});

test('without the file-added line the signer refuses the upload and Uppy reports it failed', SLOW, async (t) => {
  const source = randomFile(files, 'no size.txt', 1024);
  const { page, proxy, subject } = await openUppyPage(t, { sizeInMetadata: false });

  await page.setInputFiles('#file-input', source.path);
  const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/s3/params');
  const result = await page.evaluate(() => window.uppyPage.upload());

  assert.deepEqual(result.successful, []);
  assert.equal(result.failed.length, 1, JSON.stringify(result));
  assert.deepEqual(companionCalls(proxy).map((c) => `${c.route} ${c.status}`), ['GET /s3/params 400']);
  const refusal = await (await answer).json();
  assert.equal(refusal.error.field, 'metadata.size');
  t.diagnostic(`the signer: ${JSON.stringify(refusal)}`);
  const cause = JSON.stringify(result.events.uploadErrors[0]?.cause);
  t.diagnostic(`Uppy's error: ${result.failed[0].error}; cause: ${cause}`);
  assert.deepEqual(await keysUnder(`users/${subject}/`), []);
});

// ---------------------------------------------------------------------------------------
// The page

/** tests/e2e/uppy/index.html with entry.js bundled into it (one file, so the proxy serves it). */
async function buildPage() {
  const bundled = await build({
    entryPoints: [path.join(PAGE_DIR, 'entry.js')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'chrome120',
    logLevel: 'warning',
  });
  const script = bundled.outputFiles[0].text;
  assert.doesNotMatch(script, /<\/script/i, 'the bundle can sit inside a <script> element');
  const html = fs.readFileSync(path.join(PAGE_DIR, 'index.html'), 'utf8');
  assert.ok(html.includes('/* BUNDLE */'));
  return html.replace('/* BUNDLE */', () => script);
}

/**
 * Opens the page at PAGE_ORIGIN through a proxy that records every request to the Worker,
 * logs in with the development login, and sets up Uppy with its token. Everything is
 * closed when the test ends.
 */
async function openUppyPage(t, options = {}) {
  const proxy = await originProxy({ [PAGE_ORIGIN]: pageHtml });
  const page = await newPage(chromium.browser, { proxy: { server: proxy.url } });
  t.after(async () => {
    await page.context().close();
    await proxy.close();
  });
  const login = await callApi(worker, '/v1/dev/token', { method: 'POST' });
  assert.equal(login.status, 200, login.text);
  const { token, subject } = login.body;

  await page.goto(`${PAGE_ORIGIN}/`);
  await page.evaluate(
    ({ endpoint, token, options }) => window.uppyPage.start(endpoint, token, options),
    { endpoint: worker.baseUrl, token, options },
  );
  return { page, proxy, subject };
}

function assertSucceeded(result, page, proxy) {
  const explanation = [
    `Uppy's result: ${JSON.stringify({ failed: result.failed, errors: result.events.uploadErrors })}`,
    `signer calls: ${summarise(companionCalls(proxy))}`,
    ...page.logLines,
  ].join('\n');
  assert.deepEqual(result.failed, [], explanation);
  assert.equal(result.successful.length, 1, explanation);
}

// ---------------------------------------------------------------------------------------
// What went over the wire

/**
 * The calls to /s3/ routes that went through the proxy (preflights left out), each with
 * its method, URL, route pattern and status.
 */
function companionCalls(proxy) {
  return proxy.exchanges
    .filter((e) => e.method !== 'OPTIONS' && new URL(e.url).pathname.startsWith('/s3/'))
    .map((e) => ({ method: e.method, url: e.url, status: e.status, route: `${e.method} ${routeOf(e.url)}` }));
}

function routeOf(url) {
  const segments = new URL(url).pathname.split('/').slice(1); // ['s3', 'multipart', ...]
  if (segments[1] !== 'multipart' || segments.length === 2) return `/${segments.join('/')}`;
  const [, , , last] = segments;
  if (last === undefined) return '/s3/multipart/:uploadId';
  if (last === 'batch' || last === 'complete') return `/s3/multipart/:uploadId/${last}`;
  return '/s3/multipart/:uploadId/:partNumber';
}

/** How many preflights went to the signer and to the store. */
function preflights(proxy) {
  const options = proxy.exchanges.filter((e) => e.method === 'OPTIONS');
  const toStore = options.filter((e) => new URL(e.url).pathname.startsWith('/cdn-cgi/')).length;
  return `${options.length - toStore} to the signer, ${toStore} to the store`;
}

function summarise(calls) {
  const counts = {};
  for (const call of calls) {
    const name = `${call.route} ${call.status}`;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return Object.entries(counts).map(([name, count]) => `${count} × ${name}`).join(', ');
}

/**
 * The Content-Length of every UploadPart request the page sent, once it was answered.
 * (Playwright's request.sizes() says 0 for a Blob body, so the header it went with.)
 */
function recordPartSizes(page) {
  const sizes = [];
  page.on('requestfinished', async (request) => {
    const params = new URL(request.url()).searchParams;
    if (request.method() !== 'PUT' || !params.has('partNumber')) return;
    const headers = await request.allHeaders();
    sizes.push({ partNumber: Number(params.get('partNumber')), bytes: Number(headers['content-length']) });
  });
  return sizes;
}

/** PUTs to the store that are not parts, with the status of each answer. */
function recordStorePuts(page) {
  const puts = [];
  page.on('response', (response) => {
    const request = response.request();
    const url = new URL(request.url());
    const toStore = url.pathname.startsWith('/cdn-cgi/local/r2/s3/');
    if (request.method() === 'PUT' && toStore && !url.searchParams.has('partNumber')) {
      puts.push({ url: url.pathname, status: response.status() });
    }
  });
  return puts;
}

async function keysUnder(prefix) {
  return (await objectStore(worker).listObjects(prefix)).map((o) => o.key);
}

async function until(condition, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function range(first, last) {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}
