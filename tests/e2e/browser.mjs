// What the browser tests share: Debian's Chromium driven by playwright-core, files of
// random bytes on disk, the part requests a page sends, and a small HTTP proxy through
// which a page can live at another origin than the Worker's.
//
// Playwright cannot download a browser here; it drives the system's chromium
// (CHROMIUM_PATH, or `chromium` on PATH: `bash scripts/setup --chromium` installs it).

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { ROOT, objectStore } from './harness.mjs';

export const MiB = 1024 * 1024;
export const ARTIFACTS = path.join(ROOT, 'tests/artifacts/browser'); // git ignores it

const CHROMIUM_ARGS = [
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** The path of the Chromium binary to drive. */
export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('bash', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: run `bash scripts/setup --chromium` (apt-get install chromium)');
  }
}

/**
 * Registers before/after hooks that launch one headless Chromium for the calling test
 * file (each launch has a fresh profile directory) and close it after. The returned
 * object has `browser` by the time tests run.
 */
export function useBrowser() {
  const handle = {};
  before(async () => {
    handle.browser = await chromium.launch({
      executablePath: chromiumPath(),
      headless: true,
      chromiumSandbox: false, // --no-sandbox: the tests run as root
      args: CHROMIUM_ARGS,
    });
  });
  after(async () => {
    await handle.browser?.close();
  });
  return handle;
}

/**
 * A fresh context (its own localStorage) and page. Messages the page logs and errors it
 * throws are kept in `page.logLines` to explain a failure.
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 }, ...contextOptions });
  const page = await context.newPage();
  page.logLines = [];
  page.on('console', (message) => page.logLines.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => page.logLines.push(`pageerror: ${error.message}`));
  return page;
}

// ---------------------------------------------------------------------------------------
// Files

/** A fresh folder for a test's files; removed when the process ends. */
export function scratchDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-presigner-browser-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a file of random bytes; returns {path, name, size, sha256}. */
export function randomFile(dir, name, size) {
  const file = path.join(dir, name);
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < size; ) {
      const chunk = randomBytes(Math.min(4 * MiB, size - written));
      fs.writeSync(fd, chunk);
      hash.update(chunk);
      written += chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, name, size, sha256: hash.digest('hex') };
}

/** Hex SHA-256 and size of an object, read from the store without our Worker. */
export async function storedObject(worker, key) {
  const response = await objectStore(worker).getObject(key);
  if (response.status !== 200) {
    throw new Error(`GetObject ${key} answered ${response.status}: ${await response.text()}`);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

// ---------------------------------------------------------------------------------------
// What a page sends

/**
 * Records every UploadPart request (a PUT with partNumber and uploadId) the page sends:
 * `sent` lists {partNumber, uploadId} in order; `finished` and `failed` list those that
 * got an answer (with its status) or none. `clear()` starts over.
 */
export function recordParts(page) {
  const record = { sent: [], finished: [], failed: [] };
  const partOf = (request) => {
    if (request.method() !== 'PUT') return undefined;
    const params = new URL(request.url()).searchParams;
    if (!params.has('partNumber') || !params.has('uploadId')) return undefined;
    return { partNumber: Number(params.get('partNumber')), uploadId: params.get('uploadId') };
  };
  page.on('request', (request) => {
    const part = partOf(request);
    if (part) record.sent.push(part);
  });
  page.on('requestfinished', async (request) => {
    const part = partOf(request);
    if (!part) return;
    const response = await request.response();
    record.finished.push({ ...part, status: response?.status() });
  });
  page.on('requestfailed', (request) => {
    const part = partOf(request);
    if (part) record.failed.push({ ...part, error: request.failure()?.errorText });
  });
  record.clear = () => {
    record.sent.length = 0;
    record.finished.length = 0;
    record.failed.length = 0;
  };
  return record;
}

// ---------------------------------------------------------------------------------------
// Another origin

/**
 * An HTTP proxy for a browser context (`proxy: {server: proxy.url}`). For the origins in
 * `pages` it answers `GET /` itself with that HTML, so a page can live at, say,
 * http://localhost:8787 while the Worker listens elsewhere; every other request goes on
 * to where it was addressed, unchanged. `exchanges` lists what went through:
 * {method, url, origin, status, headers}.
 */
export async function originProxy(pages) {
  const exchanges = [];
  const server = http.createServer((request, response) => {
    const url = new URL(request.url); // a proxy is sent absolute URLs
    if (pages[url.origin] !== undefined && url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(pages[url.origin]);
      return;
    }
    forward(request, response, url, exchanges);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    exchanges,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

function forward(request, response, url, exchanges) {
  const exchange = { method: request.method, url: url.href, origin: request.headers.origin };
  exchanges.push(exchange);
  const headers = { ...request.headers };
  delete headers['proxy-connection'];
  const upstream = http.request(
    { host: url.hostname, port: url.port, method: request.method, path: url.pathname + url.search, headers },
    (answer) => {
      exchange.status = answer.statusCode;
      exchange.headers = answer.headers;
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on('error', (error) => {
    exchange.error = error.message;
    response.writeHead(502).end();
  });
  request.pipe(upstream);
}
