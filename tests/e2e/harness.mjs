// What the end-to-end tests share: a real Worker under `wrangler dev`, credentials for
// it, and a client for the local R2 store that does not go through our Worker.
//
// Each test file calls useWorker() once: it builds the Worker if build/ is older than the
// sources (once, under a lock, however many test files start at the same time), starts
// `wrangler dev` on a free loopback port with tests/e2e/test.env and a fresh local
// store, waits for GET /v1/health, and stops the whole process group after the file.

import { spawn } from 'node:child_process';
import { createHash, randomBytes as cryptoRandomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AwsClient } from 'aws4fetch';
import { SignJWT } from 'jose';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ENV_FILE = path.join(ROOT, 'tests/e2e/test.env');
export const TEST_ENV = readEnvFile(ENV_FILE);

export const BUCKET = 'edge-presigner-dev';
export const API_KEY = TEST_ENV.API_KEY_DEMO;
export const API_KEY_SUBJECT = 'demo-server';
export const JWT_SECRET = TEST_ENV.JWT_SECRET;
export const JWT_ISSUER = 'edge-presigner-dev';
export const JWT_AUDIENCE = 'edge-presigner';

const PROJECT_NODE = path.join(ROOT, 'node_modules/.bin/node');
const WRANGLER = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const BUILD_OUTPUTS = ['build/index.js', 'build/index_bg.wasm'];
const BUILD_INPUTS = ['src', 'Cargo.toml', 'Cargo.lock'];
const BUILD_LOCK = path.join(ROOT, 'target/.e2e-build.lock');
const BUILD_LOCK_STALE_MS = 20 * 60 * 1000;
const START_TIMEOUT_MS = Number(process.env.E2E_START_TIMEOUT_MS ?? 120_000);
const OUTPUT_LINES_KEPT = 80;
const WRANGLER_LOGS = path.join(ROOT, 'tests/artifacts/wrangler-logs'); // git ignores it
const REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------
// The Worker under test

/**
 * Registers before/after hooks that start one Worker for the calling test file and stop
 * it when the file ends. The returned object is filled in by the time tests run:
 * `baseUrl`, `port`, `url(path)`, `output()`.
 */
export function useWorker() {
  const worker = {};
  before(async () => {
    await ensureWorkerBuilt();
    Object.assign(worker, await startWorker());
  }, { timeout: 30 * 60 * 1000 });
  after(async () => {
    await worker.stop?.();
  });
  return worker;
}

/** Starts `wrangler dev` on free ports; resolves once GET /v1/health answers 200. */
export async function startWorker() {
  const port = await freePort();
  const inspectorPort = await freePort();
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-presigner-e2e-'));
  const args = [WRANGLER, ...wranglerDevArgs(port, inspectorPort, persistDir)];
  const child = spawn(PROJECT_NODE, args, {
    cwd: ROOT,
    env: wranglerEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() reaches workerd too
  });
  const output = keepLastLines(child);
  running.add(child);

  const baseUrl = `http://127.0.0.1:${port}`;
  const worker = {
    port,
    baseUrl,
    url: (pathAndQuery) => new URL(pathAndQuery, baseUrl).href,
    output: () => output.lines.join('\n'),
    stop: async () => {
      await stopGroup(child);
      running.delete(child);
      fs.rmSync(persistDir, { recursive: true, force: true });
    },
  };

  try {
    await waitForHealth(worker, child);
  } catch (error) {
    await worker.stop();
    throw error;
  }
  return worker;
}

// Workers still running if this process ends without the after() hooks: on an error,
// or when the test runner is interrupted.
const running = new Set();
process.once('exit', killAllRunning);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAllRunning();
    process.kill(process.pid, signal); // then end the way the signal would have
  });
}

function killAllRunning() {
  for (const child of running) killGroup(child, 'SIGKILL');
}

function wranglerDevArgs(port, inspectorPort, persistDir) {
  return [
    'dev',
    '--local',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--env-file', ENV_FILE,
    '--persist-to', persistDir,
    '--show-interactive-dev-session=false',
  ];
}

function wranglerEnv() {
  return {
    ...process.env,
    PATH: `${path.join(ROOT, 'node_modules/.bin')}${path.delimiter}${process.env.PATH}`,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    WRANGLER_LOG_PATH: WRANGLER_LOGS, // kept after the run, unlike persistDir
    // wrangler runs the [build] command on start; the harness has built already.
    EDGE_PRESIGNER_PREBUILT: '1',
  };
}

async function waitForHealth(worker, child) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = null;
  child.once('exit', (code, signal) => { exited = signal ?? `exit code ${code}`; });

  while (Date.now() < deadline) {
    if (exited) {
      throw startupError(`wrangler dev stopped (${exited}) before it served`, worker);
    }
    if (await healthAnswers200(worker)) return;
    await sleep(250);
  }
  throw startupError(`GET /v1/health did not answer 200 within ${START_TIMEOUT_MS} ms`, worker);
}

async function healthAnswers200(worker) {
  try {
    const response = await fetch(worker.url('/v1/health'), { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false; // not listening yet
  }
}

function startupError(reason, worker) {
  return new Error(`${reason}. Last lines of its output:\n${worker.output()}`);
}

function keepLastLines(child) {
  const kept = { lines: [] };
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      kept.lines.push(...lines.map(withoutColour));
      kept.lines.splice(0, Math.max(0, kept.lines.length - OUTPUT_LINES_KEPT));
    });
  }
  return kept;
}

function withoutColour(line) {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\x1b\[[0-9;]*m/g, '');
}

async function stopGroup(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  killGroup(child, 'SIGKILL'); // anything of the group that outlived wrangler
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------
// Building once

/**
 * Runs scripts/build-worker unless build/ is newer than every source. A lock directory
 * makes test files that start together wait for one build instead of racing.
 */
export async function ensureWorkerBuilt() {
  if (buildIsFresh()) return;
  await withBuildLock(async () => {
    if (buildIsFresh()) return; // another test file built it while we waited
    process.stderr.write('e2e: building the Worker (bash scripts/build-worker)\n');
    await runBuild();
  });
}

function buildIsFresh() {
  const outputs = BUILD_OUTPUTS.map((file) => mtimeOf(path.join(ROOT, file)));
  if (outputs.includes(null)) return false;
  const newestInput = Math.max(...BUILD_INPUTS.map((input) => newestMtime(path.join(ROOT, input))));
  return Math.min(...outputs) >= newestInput;
}

function mtimeOf(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

function newestMtime(entry) {
  const stat = fs.statSync(entry, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  const children = fs.readdirSync(entry).map((name) => newestMtime(path.join(entry, name)));
  return Math.max(stat.mtimeMs, ...children);
}

async function withBuildLock(work) {
  fs.mkdirSync(path.dirname(BUILD_LOCK), { recursive: true });
  while (!tryLock()) await sleep(500);
  try {
    await work();
  } finally {
    fs.rmSync(BUILD_LOCK, { recursive: true, force: true });
  }
}

function tryLock() {
  try {
    fs.mkdirSync(BUILD_LOCK);
    return true;
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
    const age = Date.now() - (mtimeOf(BUILD_LOCK) ?? Date.now());
    if (age > BUILD_LOCK_STALE_MS) fs.rmSync(BUILD_LOCK, { recursive: true, force: true });
    return false;
  }
}

function runBuild() {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/build-worker'], {
      cwd: ROOT,
      env: { ...process.env, EDGE_PRESIGNER_PREBUILT: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = keepLastLines(child);
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`scripts/build-worker failed (${code}):\n${output.lines.join('\n')}`));
    });
  });
}

// ---------------------------------------------------------------------------------------
// Calling the API

/**
 * Calls the Worker and reads the answer. `credential` becomes a Bearer token; `json` is
 * sent as the body (`rawBody` sends a string or bytes as they are).
 */
export async function callApi(worker, pathAndQuery, options = {}) {
  const { method = 'POST', credential, json, rawBody, headers = {} } = options;
  const sent = { ...headers };
  if (credential !== undefined) sent.authorization = `Bearer ${credential}`;
  let body = rawBody;
  if (json !== undefined) {
    body = JSON.stringify(json);
    sent['content-type'] ??= 'application/json';
  }
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const response = await fetch(worker.url(pathAndQuery), { method, headers: sent, body, signal });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: parseJson(text) };
}

/** POST /v1/uploads with the API key unless another credential is given. */
export function createUpload(worker, request, credential = API_KEY) {
  return callApi(worker, '/v1/uploads', { credential, json: request });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Credentials

/** Claims the Worker accepts from an HS256 JWT, for `subject`, valid five minutes. */
export function jwtClaims(subject, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  const standard = { iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: subject, iat: now, exp: now + 300 };
  return { ...standard, ...overrides };
}

/** A compact HS256 JWT over exactly these claims. */
export function signJwt(claims, secret = JWT_SECRET) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
}

/** A JWT with `alg: none` and an empty signature, as an attacker would send it. */
export function unsignedJwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

// ---------------------------------------------------------------------------------------
// Bytes

export function randomBytes(size) {
  return cryptoRandomBytes(size);
}

/** Hex SHA-256 of a Buffer, Uint8Array or ArrayBuffer. */
export function sha256(bytes) {
  return createHash('sha256').update(new Uint8Array(bytes)).digest('hex');
}

/** Base64 SHA-256, the form S3 and our API use for `checksumSha256`. */
export function sha256Base64(bytes) {
  return createHash('sha256').update(new Uint8Array(bytes)).digest('base64');
}

// ---------------------------------------------------------------------------------------
// The store, seen without our Worker

/**
 * A client for the bucket that `wrangler dev` serves over the S3 API, signing with the
 * dev credentials (aws4fetch), so tests check what really landed.
 */
export function objectStore(worker) {
  const client = new AwsClient({
    accessKeyId: TEST_ENV.DEV_R2_ACCESS_KEY_ID,
    secretAccessKey: TEST_ENV.DEV_R2_SECRET_ACCESS_KEY,
    service: 's3',
    region: 'auto',
  });
  const bucketUrl = `${worker.baseUrl}/cdn-cgi/local/r2/s3/${BUCKET}`;
  return {
    bucketUrl,
    objectUrl: (key) => `${bucketUrl}/${encodeKey(key)}`,
    getObject: (key) => client.fetch(`${bucketUrl}/${encodeKey(key)}`),
    listObjects: (prefix = '') => listAll(client, bucketUrl, prefix),
  };
}

/** Percent-encodes each segment of an object key, keeping the slashes. */
export function encodeKey(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** Every object under `prefix` as {key, size, etag}, following ListObjectsV2's pages. */
async function listAll(client, bucketUrl, prefix) {
  const objects = [];
  let token;
  do {
    const query = new URLSearchParams({ 'list-type': '2', prefix });
    if (token) query.set('continuation-token', token);
    const response = await client.fetch(`${bucketUrl}?${query}`);
    const xml = await response.text();
    if (response.status !== 200) {
      throw new Error(`ListObjectsV2 answered ${response.status}: ${xml}`);
    }
    objects.push(...xmlElements(xml, 'Contents').map(listedObject));
    const truncated = xmlText(xml, 'IsTruncated') === 'true';
    token = truncated ? xmlText(xml, 'NextContinuationToken') : undefined;
  } while (token);
  return objects;
}

function listedObject(xml) {
  return {
    key: xmlText(xml, 'Key'),
    size: Number(xmlText(xml, 'Size')),
    etag: xmlText(xml, 'ETag'),
  };
}

function xmlElements(xml, name) {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g'))].map((m) => m[1]);
}

function xmlText(xml, name) {
  const [first] = xmlElements(xml, name);
  return first === undefined ? undefined : unescapeXml(first);
}

function unescapeXml(text) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (entity, body) => {
    if (body[0] !== '#') return named[body] ?? entity;
    const hex = body[1] === 'x' || body[1] === 'X';
    return String.fromCodePoint(parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10));
  });
}

// ---------------------------------------------------------------------------------------
// Small things

function readEnvFile(file) {
  const values = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) values[match[1]] = match[2];
  }
  return values;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
