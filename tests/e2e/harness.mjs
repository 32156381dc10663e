// What the end-to-end tests share: a real Worker under `wrangler dev`, credentials for
// it, a second S3 store (SeaweedFS), and clients for both stores that do not go through
// our Worker.
//
// Each test file calls useWorker() once: it builds the Worker if build/ is older than the
// sources (once, under a lock, however many test files start at the same time), starts
// `wrangler dev` on a free loopback port with tests/e2e/test.env and a fresh local
// store, waits for GET /v1/health, and stops the whole process group after the file.
//
// A file that also tests against SeaweedFS calls useSeaweedFS() first and passes the
// result to useWorker({ seaweed }): the Worker then has a bucket `seaweed` and a profile
// `seaweed` (the `default` rules, that bucket) on top of wrangler.toml's settings.
//
// A file that breaks the store's answers on purpose also calls useFaultProxy(seaweed)
// (fault-proxy.mjs) and passes it as useWorker({ seaweed, faultProxy }): the Worker then
// also has a bucket `seaweed-faults`, the same SeaweedFS bucket reached through the
// proxy, and a profile `faults` that writes there.
//
// useWorker({ vars }) replaces whole variables (AUTH, CORS, ...) for one file, and
// useWorker({ fullOutput: true }) keeps every line wrangler printed, for files that check
// the audit log.

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
/** The key-prefix segment of the API key's caller: API keys own `~key-<name>`. */
export const API_KEY_OWNER = `~key-${API_KEY_SUBJECT}`;
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
 * `baseUrl`, `port`, `url(path)`, `output()` (the last lines wrangler printed).
 *
 * Options (all optional). The first three replace the BUCKETS and PROFILES variables of
 * wrangler.toml with a copy that has more entries, given with `wrangler dev --var`:
 * - `seaweed`: the object useSeaweedFS() returned; adds bucket and profile `seaweed`.
 * - `faultProxy`: the object useFaultProxy() returned; adds bucket `seaweed-faults` and
 *   profile `faults`, which reach the same bucket through the proxy.
 * - `profiles`: more profiles by name, each a copy of the `default` profile with the
 *   given fields replaced (`{ big: { bucket: 'seaweed', maxSize: 2 ** 40 } }`).
 * - `vars`: variables by name, each replacing wrangler.toml's whole variable, also with
 *   `--var` (`{ AUTH: { ...(await wranglerTomlVars()).AUTH, access: {...} } }`). A name
 *   given here wins over what `seaweed` and `profiles` make of it.
 * - `fullOutput`: when true, the worker also has `fullOutput()`, every line wrangler has
 *   printed since it started (its stdout and stderr, in the order they arrived).
 * - `healthStatus`: the status GET /v1/health gives once the Worker serves (default
 *   200); 500 for a Worker started with a configuration that does not load on purpose.
 * - `rateLimit`: signing requests a minute per caller, in place of wrangler.toml's 600.
 *   The Worker then runs from a copy of wrangler.toml with that limit, beside it in the
 *   project's root (so its relative paths hold) and removed when the Worker stops.
 */
export function useWorker(options = {}) {
  const worker = {};
  before(async () => {
    await ensureWorkerBuilt();
    // A file's top-level before() hooks run concurrently: wait for SeaweedFS's port.
    if (options.seaweed) await seaweedStarts.get(options.seaweed);
    if (options.faultProxy) await options.faultProxy.ready;
    Object.assign(worker, await startWorker(options));
  }, { timeout: 30 * 60 * 1000 });
  after(async () => {
    await worker.stop?.();
  });
  return worker;
}

/**
 * Starts `wrangler dev` on free ports; resolves once GET /v1/health answers 200. Takes
 * the options of useWorker().
 */
export async function startWorker(options = {}) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-presigner-e2e-'));
  const configFile = options.rateLimit === undefined
    ? null
    : writeConfigWithRateLimit(port, options.rateLimit);
  const args = [
    WRANGLER,
    ...wranglerDevArgs(port, inspectorPort, persistDir),
    ...(configFile ? ['--config', configFile] : []),
    ...await configVarArgs(options),
  ];
  const child = spawn(PROJECT_NODE, args, {
    cwd: ROOT,
    env: wranglerEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() reaches workerd too
  });
  const output = keepLastLines(child, { keepAll: options.fullOutput === true });
  running.set(child, 'SIGKILL');

  const baseUrl = `http://127.0.0.1:${port}`;
  const worker = {
    port,
    baseUrl,
    url: (pathAndQuery) => new URL(pathAndQuery, baseUrl).href,
    output: () => output.lines.join('\n'),
    ...(options.fullOutput === true && { fullOutput: () => output.all().join('\n') }),
    stop: async () => {
      await stopGroup(child);
      running.delete(child);
      fs.rmSync(persistDir, { recursive: true, force: true });
      if (configFile) fs.rmSync(configFile, { force: true });
    },
  };

  try {
    await waitForHealth(worker, child, options.healthStatus ?? 200);
  } catch (error) {
    await worker.stop();
    throw error;
  }
  return worker;
}

// Processes still running if this process ends without the after() hooks: on an error,
// or when the test runner is interrupted. Each with the signal that ends it then: SIGKILL
// for wrangler, SIGTERM for SeaweedFS, which then shuts down cleanly on its own.
const running = new Map();
process.once('exit', killAllRunning);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAllRunning();
    process.kill(process.pid, signal); // then end the way the signal would have
  });
}

function killAllRunning() {
  for (const [child, signal] of running) killGroup(child, signal);
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

// The rate limit's line in wrangler.toml; writeConfigWithRateLimit() replaces it.
const RATE_LIMIT_LINE = /^simple = \{ limit = \d+, period = 60 \}$/m;

/**
 * Writes wrangler.e2e-<port>.toml (git ignores it), wrangler.toml with `limit` signing
 * requests a minute per caller; returns its path.
 */
function writeConfigWithRateLimit(port, limit) {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`rateLimit ${limit} is not a positive integer`);
  const text = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8');
  if (!RATE_LIMIT_LINE.test(text)) {
    throw new Error(`wrangler.toml has no line matching ${RATE_LIMIT_LINE}: update the harness`);
  }
  const file = path.join(ROOT, `wrangler.e2e-${port}.toml`);
  fs.writeFileSync(file, text.replace(RATE_LIMIT_LINE, `simple = { limit = ${limit}, period = 60 }`));
  return file;
}

/** `--var` arguments for the options of useWorker(), or none without them. */
async function configVarArgs({ seaweed, faultProxy, profiles = {}, vars = {} }) {
  const args = await storeVarArgs({ seaweed, faultProxy, profiles }, Object.keys(vars));
  // The Worker reads a variable that is a string as JSON, which is what --var gives.
  for (const [name, value] of Object.entries(vars)) {
    args.push('--var', `${name}:${JSON.stringify(value)}`);
  }
  return args;
}

/**
 * `--var` arguments that replace BUCKETS and PROFILES, or none without options; none for
 * a variable that `replaced` names.
 */
async function storeVarArgs({ seaweed, faultProxy, profiles }, replaced) {
  if (!seaweed && Object.keys(profiles).length === 0) return [];
  const vars = await wranglerTomlVars();
  const buckets = { ...vars.BUCKETS };
  const allProfiles = { ...vars.PROFILES };
  if (seaweed) {
    buckets[SEAWEED_BUCKET_SETTING] = seaweedBucketSettings(seaweed);
    allProfiles[SEAWEED_PROFILE] = { ...vars.PROFILES.default, bucket: SEAWEED_BUCKET_SETTING };
  }
  if (seaweed && faultProxy) {
    const endpoint = faultProxy.endpoint;
    buckets[FAULTS_BUCKET_SETTING] = { ...seaweedBucketSettings(seaweed), endpoint };
    allProfiles[FAULTS_PROFILE] = { ...vars.PROFILES.default, bucket: FAULTS_BUCKET_SETTING };
  }
  for (const [name, fields] of Object.entries(profiles)) {
    allProfiles[name] = { ...vars.PROFILES.default, ...fields };
  }
  const made = { BUCKETS: buckets, PROFILES: allProfiles };
  return Object.entries(made)
    .filter(([name]) => !replaced.includes(name))
    .flatMap(([name, value]) => ['--var', `${name}:${JSON.stringify(value)}`]);
}

/** The [vars] of wrangler.toml, read with wrangler's own parser. */
export async function wranglerTomlVars() {
  const { experimental_readRawConfig: readRawConfig } = await import('wrangler');
  const { rawConfig } = readRawConfig({ config: path.join(ROOT, 'wrangler.toml') });
  return rawConfig.vars;
}

function seaweedBucketSettings(seaweed) {
  return {
    provider: 's3-compatible',
    bucket: seaweed.bucket,
    endpoint: seaweed.endpoint,
    region: SEAWEED_REGION,
    credentials: 'SEAWEED', // secrets SEAWEED_ACCESS_KEY_ID, ..._SECRET_ACCESS_KEY in test.env
  };
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

async function waitForHealth(worker, child, status) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = null;
  child.once('exit', (code, signal) => { exited = signal ?? `exit code ${code}`; });

  while (Date.now() < deadline) {
    if (exited) {
      throw startupError(`wrangler dev stopped (${exited}) before it served`, worker);
    }
    if (await healthAnswers(worker, status)) return;
    await sleep(250);
  }
  throw startupError(`GET /v1/health did not answer ${status} within ${START_TIMEOUT_MS} ms`, worker);
}

async function healthAnswers(worker, status) {
  try {
    const response = await fetch(worker.url('/v1/health'), { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status === status;
  } catch {
    return false; // not listening yet
  }
}

function startupError(reason, worker) {
  return new Error(`${reason}. Last lines of its output:\n${worker.output()}`);
}

/**
 * Collects a child's output lines: `lines`, the last OUTPUT_LINES_KEPT, and with
 * `keepAll`, `all()`, every line so far (with each stream's unfinished last line).
 */
function keepLastLines(child, { keepAll = false } = {}) {
  const every = [];
  const partials = new Map();
  const kept = {
    lines: [],
    all: () => [...every, ...[...partials.values()].filter(Boolean).map(withoutColour)],
  };
  for (const stream of [child.stdout, child.stderr]) {
    partials.set(stream, '');
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      const lines = (partials.get(stream) + text).split('\n');
      partials.set(stream, lines.pop());
      const clean = lines.map(withoutColour);
      kept.lines.push(...clean);
      kept.lines.splice(0, Math.max(0, kept.lines.length - OUTPUT_LINES_KEPT));
      if (keepAll) every.push(...clean);
    });
  }
  return kept;
}

function withoutColour(line) {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\x1b\[[0-9;]*m/g, '');
}

async function stopGroup(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
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
// SeaweedFS, a second S3 store that checks signatures the way AWS does

export const SEAWEED_BUCKET = 'edge-presigner-e2e';
export const SEAWEED_REGION = 'us-east-1';
/** The bucket's name in the Worker's BUCKETS, and the profile that writes to it. */
export const SEAWEED_BUCKET_SETTING = 'seaweed';
export const SEAWEED_PROFILE = 'seaweed';
/** The same bucket reached through the fault proxy, and the profile that writes there. */
export const FAULTS_BUCKET_SETTING = 'seaweed-faults';
export const FAULTS_PROFILE = 'faults';

const WEED = path.join(ROOT, '.venv/bin/weed'); // scripts/setup --seaweedfs puts it there
const SEAWEED_LOCK = path.join(ROOT, 'target/.e2e-seaweedfs.lock');
const SEAWEED_LOCK_WAIT_MS = 20 * 60 * 1000;
const SEAWEED_START_TIMEOUT_MS = 60_000;
const SEAWEED_STOP_GRACE_MS = 10_000;
// Each SeaweedFS server listens on an HTTP port and, by its convention, on that port +
// 10000 for gRPC. Its embedded maintenance worker dials the admin server's gRPC there
// whatever -admin.port.grpc says, so the harness keeps to the convention.
const GRPC_OFFSET = 10_000;
const SEAWEED_SERVERS = ['s3', 'master', 'volume', 'filer', 'admin'];
// What useSeaweedFS() returned, with the promise that it has started.
const seaweedStarts = new WeakMap();

/**
 * Registers before/after hooks that start SeaweedFS for the calling test file and stop
 * it when the file ends. Call it before useWorker({ seaweed }), so it starts first. The
 * returned object is filled in by the time tests run: `endpoint`, `port`, `bucket`,
 * `stop()` (tests may stop it early), `stopped`, `output()`.
 */
export function useSeaweedFS() {
  const seaweed = {};
  const started = Promise.withResolvers();
  started.promise.catch(() => {}); // the hook below reports the failure
  seaweedStarts.set(seaweed, started.promise);
  before(async () => {
    try {
      Object.assign(seaweed, await startSeaweedFS());
      started.resolve();
    } catch (error) {
      started.reject(error);
      throw error;
    }
  }, { timeout: SEAWEED_LOCK_WAIT_MS + SEAWEED_START_TIMEOUT_MS });
  after(async () => {
    await seaweed.stop?.();
  });
  return seaweed;
}

/**
 * Starts `weed mini` on free loopback ports with test.env's credentials as its only
 * identity, waits until its S3 endpoint answers, and creates SEAWEED_BUCKET.
 *
 * Only one SeaweedFS of this harness runs at a time: a lock in target/ makes a second
 * test process wait, and a lock left by a process that died is taken over after its
 * SeaweedFS, if still running, is killed.
 */
export async function startSeaweedFS() {
  if (!fs.existsSync(WEED)) {
    throw new Error(`${WEED} is missing: run bash scripts/setup --seaweedfs`);
  }
  await acquireSeaweedLock();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-presigner-seaweedfs-'));
  let child;
  let ports;
  try {
    ports = await seaweedPorts();
    child = spawn(WEED, seaweedArgs(dir, ports), {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so stop() reaches everything it starts
    });
    running.set(child, 'SIGTERM');
    writeLockOwner({ pid: process.pid, weedPid: child.pid, dir, ports });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    releaseSeaweedLock();
    throw error;
  }
  const output = keepLastLines(child);
  const endpoint = `http://127.0.0.1:${ports.s3}`;
  const seaweed = {
    port: ports.s3,
    endpoint,
    bucket: SEAWEED_BUCKET,
    stopped: false,
    output: () => output.lines.join('\n'),
    stop: async () => {
      if (seaweed.stopped) return;
      seaweed.stopped = true;
      await stopGroup(child, SEAWEED_STOP_GRACE_MS);
      running.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
      removeGrpcSockets(ports);
      releaseSeaweedLock();
    },
  };

  try {
    await waitForSeaweedS3(seaweed, child);
    await createSeaweedBucket(seaweed);
  } catch (error) {
    await seaweed.stop();
    throw error;
  }
  return seaweed;
}

function seaweedArgs(dir, ports) {
  return [
    'mini',
    `-dir=${dir}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-s3.config=${writeSeaweedIdentities(dir)}`, // without it, S3 is open to anyone
    '-admin.ui=false',
    '-webdav=false',
    '-master.telemetry=false', // it would report to seaweedfs.com otherwise
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    // Unix sockets in the data folder instead of shared names in /tmp.
    `-s3.localSocket=${path.join(dir, 's3.sock')}`,
    `-filer.localSocket=${path.join(dir, 'filer.sock')}`,
    ...SEAWEED_SERVERS.map((server) => `-${server}.port=${ports[server]}`),
  ];
}

/** The S3 identities file: one identity, test.env's credentials, every action. */
function writeSeaweedIdentities(dir) {
  const file = path.join(dir, 'identities.json');
  const identities = {
    identities: [{
      name: 'edge-presigner-e2e',
      credentials: [{
        accessKey: TEST_ENV.SEAWEED_ACCESS_KEY_ID,
        secretKey: TEST_ENV.SEAWEED_SECRET_ACCESS_KEY,
      }],
      actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
    }],
  };
  fs.writeFileSync(file, JSON.stringify(identities), { mode: 0o600 });
  return file;
}

/** A free HTTP port for each server, with its gRPC port (+10000) free as well. */
async function seaweedPorts() {
  const ports = {};
  const taken = new Set();
  for (const server of SEAWEED_SERVERS) {
    let port;
    do {
      port = await freePort();
    } while (taken.has(port) || !await portIsFree(port + GRPC_OFFSET));
    taken.add(port).add(port + GRPC_OFFSET);
    ports[server] = port;
  }
  return ports;
}

function portIsFree(port) {
  if (port > 65535) return Promise.resolve(false);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function waitForSeaweedS3(seaweed, child) {
  const deadline = Date.now() + SEAWEED_START_TIMEOUT_MS;
  let exited = null;
  child.once('exit', (code, signal) => { exited = signal ?? `exit code ${code}`; });
  const client = seaweedClient();

  while (Date.now() < deadline) {
    if (exited) throw seaweedError(`weed mini stopped (${exited}) before it served`, seaweed);
    if (await listBucketsAnswers200(client, seaweed.endpoint)) return;
    await sleep(250);
  }
  const reason = `its S3 endpoint did not answer within ${SEAWEED_START_TIMEOUT_MS} ms`;
  throw seaweedError(reason, seaweed);
}

async function listBucketsAnswers200(client, endpoint) {
  try {
    const response = await client.fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false; // not listening yet
  }
}

async function createSeaweedBucket(seaweed) {
  const response = await seaweedClient().fetch(`${seaweed.endpoint}/${seaweed.bucket}`, {
    method: 'PUT',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw seaweedError(`CreateBucket answered ${response.status}: ${text}`, seaweed);
  }
}

function seaweedError(reason, seaweed) {
  return new Error(`SeaweedFS: ${reason}. Last lines of its output:\n${seaweed.output()}`);
}

function seaweedClient() {
  return new AwsClient({
    accessKeyId: TEST_ENV.SEAWEED_ACCESS_KEY_ID,
    secretAccessKey: TEST_ENV.SEAWEED_SECRET_ACCESS_KEY,
    service: 's3',
    region: SEAWEED_REGION,
  });
}

// The lock is a directory; owner.json in it says which test process holds it, and which
// weed process and data folder that process started.

async function acquireSeaweedLock() {
  fs.mkdirSync(path.dirname(SEAWEED_LOCK), { recursive: true });
  const deadline = Date.now() + SEAWEED_LOCK_WAIT_MS;
  while (!tryLockSeaweed()) {
    if (Date.now() > deadline) {
      throw new Error(`SeaweedFS: ${SEAWEED_LOCK} stayed held for ${SEAWEED_LOCK_WAIT_MS} ms`);
    }
    await sleep(500);
  }
}

function tryLockSeaweed() {
  try {
    fs.mkdirSync(SEAWEED_LOCK);
    writeLockOwner({ pid: process.pid });
    return true;
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
  }
  const owner = readLockOwner();
  const justTaken = !owner && Date.now() - (mtimeOf(SEAWEED_LOCK) ?? 0) < 10_000;
  if (justTaken || (owner && processIsAlive(owner.pid))) return false;

  process.stderr.write('e2e: taking over the SeaweedFS lock of a test process that ended\n');
  if (owner) stopLeftoverSeaweed(owner);
  fs.rmSync(SEAWEED_LOCK, { recursive: true, force: true });
  return false; // free now: taken on the next try
}

/** Kills the weed process group a dead test process left, if it is still that weed. */
function stopLeftoverSeaweed({ weedPid, dir, ports }) {
  if (weedPid && dir && commandLineOf(weedPid).includes(`-dir=${dir}`)) {
    process.stderr.write(`e2e: stopping SeaweedFS ${weedPid} left by an earlier run\n`);
    try {
      process.kill(-weedPid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (dir?.startsWith(path.join(os.tmpdir(), 'edge-presigner-seaweedfs-'))) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (ports) removeGrpcSockets(ports);
}

/**
 * Removes the gRPC sockets weed makes in /tmp (no flag moves them), which it removes
 * itself only when it shuts down cleanly.
 */
function removeGrpcSockets(ports) {
  for (const server of SEAWEED_SERVERS) {
    const socket = `/tmp/seaweedfs-${server}-grpc-${ports[server] + GRPC_OFFSET}.sock`;
    fs.rmSync(socket, { force: true });
  }
}

function commandLineOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

function processIsAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function writeLockOwner(owner) {
  fs.writeFileSync(path.join(SEAWEED_LOCK, 'owner.json'), JSON.stringify(owner));
}

function readLockOwner() {
  try {
    return JSON.parse(fs.readFileSync(path.join(SEAWEED_LOCK, 'owner.json'), 'utf8'));
  } catch {
    return null;
  }
}

function releaseSeaweedLock() {
  if (readLockOwner()?.pid === process.pid) {
    fs.rmSync(SEAWEED_LOCK, { recursive: true, force: true });
  }
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
  return s3Bucket({
    bucketUrl: `${worker.baseUrl}/cdn-cgi/local/r2/s3/${BUCKET}`,
    region: 'auto',
    accessKeyId: TEST_ENV.DEV_R2_ACCESS_KEY_ID,
    secretAccessKey: TEST_ENV.DEV_R2_SECRET_ACCESS_KEY,
  });
}

/** The same client for the SeaweedFS bucket of useSeaweedFS(). */
export function seaweedStore(seaweed) {
  return s3Bucket({
    bucketUrl: `${seaweed.endpoint}/${seaweed.bucket}`,
    region: SEAWEED_REGION,
    accessKeyId: TEST_ENV.SEAWEED_ACCESS_KEY_ID,
    secretAccessKey: TEST_ENV.SEAWEED_SECRET_ACCESS_KEY,
  });
}

/**
 * The two stores a file that uses useSeaweedFS() tests against, for one describe() each:
 * `name`, `id` (for naming more profiles), `profile` (the profile that writes there),
 * `bucketSetting` (its name in BUCKETS), `bucket` (its name at the store), and what the
 * store does, as measured: `listsParts` (ListParts works), `checksChecksums` (a body
 * that does not match a signed x-amz-checksum-sha256 is refused), `honoursResponseHeaders`
 * (a GET's response-content-disposition query parameter sets Content-Disposition).
 */
export const STORES = [
  {
    name: 'the local R2 store',
    id: 'r2',
    profile: 'default',
    bucketSetting: 'dev',
    bucket: BUCKET,
    listsParts: false, // wrangler dev answers ListParts with 501 NotImplemented
    checksChecksums: false,
    honoursResponseHeaders: false, // it ignores response-content-disposition, even signed
    refusesUnsignedHeaders: false, // it stores an x-amz-meta-* header the URL did not sign
  },
  {
    name: 'SeaweedFS',
    id: 'seaweedfs',
    profile: SEAWEED_PROFILE,
    bucketSetting: SEAWEED_BUCKET_SETTING,
    bucket: SEAWEED_BUCKET,
    listsParts: true,
    checksChecksums: true,
    honoursResponseHeaders: true,
    refusesUnsignedHeaders: true,
  },
];

/** Our own client (objectStore or seaweedStore) for one of STORES. */
export function storeClient(store, { worker, seaweed }) {
  return store.id === 'seaweedfs' ? seaweedStore(seaweed) : objectStore(worker);
}

/**
 * A path-style S3 bucket seen with our own signatures: `getObject(key)`,
 * `headObject(key)`, `listObjects(prefix)` (every page) and `fetch(url, init)` for
 * any other signed request.
 */
function s3Bucket({ bucketUrl, region, accessKeyId, secretAccessKey }) {
  const client = new AwsClient({ accessKeyId, secretAccessKey, service: 's3', region });
  const signal = () => AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const objectUrl = (key) => `${bucketUrl}/${encodeKey(key)}`;
  return {
    bucketUrl,
    objectUrl,
    getObject: (key) => client.fetch(objectUrl(key), { signal: signal() }),
    headObject: (key) => client.fetch(objectUrl(key), { method: 'HEAD', signal: signal() }),
    listObjects: (prefix = '') => listAll(client, bucketUrl, prefix),
    fetch: (url, init = {}) => client.fetch(url, { signal: signal(), ...init }),
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
