// End to end: JWTs signed with published keys (RS256 and ES256 through a JWKS URL) and
// Cloudflare Access assertions, checked by the Worker under `wrangler dev`.
//
// The test is its own identity provider: it makes keys with jose, publishes them from a
// key server on 127.0.0.1 that counts its fetches (idp.mjs), and starts the Worker with
// wrangler.toml's AUTH plus an issuer and an Access application that point there. Then it
// checks that good tokens pass, that each known attack on JWT verification fails with the
// right status, that key sets are fetched again on rotation but not per request, that a
// caller past the rate limit is told to wait, and that the audit log has one line per
// request and no secret.
//
// Run: PATH=$PWD/node_modules/.bin:$PATH node --test tests/e2e/auth.test.mjs

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, describe, test } from 'node:test';

import {
  API_KEY,
  API_KEY_OWNER,
  JWT_SECRET,
  TEST_ENV,
  callApi,
  freePort,
  jwtClaims,
  signJwt,
  unsignedJwt,
  useWorker,
  wranglerTomlVars,
} from './harness.mjs';
import { claimsFor, keySet, makeKey, signWithKey, startKeyServer } from './idp.mjs';

const IDP = { issuer: 'https://idp.test', audience: 'edge-presigner', namespace: 'idp' };
const ACCESS = { team: 'team.test', issuer: 'https://team.test', audience: 'access-aud' };
// Issuers whose key sets cannot be had: one on a port where nothing listens, one whose
// key server answers 500.
const UNREACHABLE = { issuer: 'https://unreachable.test', audience: 'edge-presigner' };
const FAILING = { issuer: 'https://failing.test', audience: 'edge-presigner' };
const MIN_REFETCH_SECONDS = 2;
const MAX_AGE_SECONDS = 300;

const JWKS_PATH = '/jwks.json';
const CERTS_PATH = '/certs';
const FAILING_PATH = '/failing.json';
const UPLOAD = { filename: 'a.png', contentType: 'image/png', size: 10 };
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

// The rate limit of wrangler.toml: 600 signing requests a minute per caller.
const RATE_LIMIT = 600;
const RATE_BATCH = 10;
// Enough to cross the limit twice over, should a wall-clock minute end during the burst
// (the local limiter's windows are aligned to the clock) and reset the count.
const RATE_MAX_REQUESTS = 2 * RATE_LIMIT + 10 * RATE_BATCH;

// ---------------------------------------------------------------------------------------
// The identity provider and the Worker

const keys = {
  rsa: await makeKey('RS256', 'rsa-1'),
  ec: await makeKey('ES256', 'ec-1'),
  // Not published, but it names the kid of a published key.
  impostor: await makeKey('RS256', 'rsa-1'),
  // Published only once the keys rotate.
  rotated: await makeKey('RS256', 'rsa-2'),
  access: await makeKey('RS256', 'access-1'),
};
// An RSA key whose modulus is not base64url, published under its own kid.
const MALFORMED_JWK = {
  kty: 'RSA', kid: 'rsa-bad-n', alg: 'RS256', use: 'sig', n: 'not*base64url!', e: 'AQAB',
};

const idp = await startKeyServer();
after(() => idp.stop());
publishFirstKeySet();
idp.publish(CERTS_PATH, keySet([keys.access]));
idp.publish(FAILING_PATH, { error: 'down for maintenance' }, { status: 500 });
const closedPort = await freePort(); // nothing listens there

/** The key set before the rotation: RS256 and ES256 keys, and a malformed one. */
function publishFirstKeySet({ delayMs = 0 } = {}) {
  idp.publish(JWKS_PATH, keySet([keys.rsa, keys.ec], [MALFORMED_JWK]), {
    cacheControl: `public, max-age=${MAX_AGE_SECONDS}`,
    delayMs,
  });
}

const worker = useWorker({ vars: { AUTH: await authSettings() }, fullOutput: true });

/** wrangler.toml's AUTH (its API key and HS256 issuer) with this file's issuers added. */
async function authSettings() {
  const { AUTH } = await wranglerTomlVars();
  const published = (issuer, jwksUrl) => ({
    jwksUrl,
    issuer: issuer.issuer,
    audience: issuer.audience,
  });
  return {
    ...AUTH,
    jwt: [
      ...AUTH.jwt,
      {
        ...published(IDP, idp.url(JWKS_PATH)),
        namespace: IDP.namespace,
        jwksMinRefetchSeconds: MIN_REFETCH_SECONDS,
      },
      {
        ...published(UNREACHABLE, `http://127.0.0.1:${closedPort}/jwks.json`),
        namespace: 'down',
      },
      { ...published(FAILING, idp.url(FAILING_PATH)), namespace: 'failing' },
    ],
    access: { teamDomain: ACCESS.team, audience: ACCESS.audience, certsUrl: idp.url(CERTS_PATH) },
  };
}

// ---------------------------------------------------------------------------------------
// Calling the Worker, keeping what the audit-log test checks

/** Every request this file sent to the Worker: `{ requestId, status }`. */
const sent = [];
/** Every credential this file sent: none may appear in the Worker's output. */
const credentialsSent = new Set();
let requestCount = 0;

/**
 * POST /v1/uploads with `bearer` in Authorization and/or `access` in
 * Cf-Access-Jwt-Assertion. Each request names its own id in `cf-ray`, which the Worker
 * takes as the audit line's `requestId` (Cloudflare sets that header; wrangler dev lets
 * ours through), so the audit-log test can find the line of each request.
 */
async function requestUpload({ bearer, access } = {}) {
  const requestId = `e2e-auth-${++requestCount}`;
  const headers = { 'cf-ray': requestId };
  if (access !== undefined) headers['cf-access-jwt-assertion'] = access;
  for (const credential of [bearer, access]) {
    if (credential !== undefined) credentialsSent.add(credential);
  }
  const response = await callApi(worker, '/v1/uploads', {
    credential: bearer,
    json: UPLOAD,
    headers,
  });
  sent.push({ requestId, status: response.status });
  return response;
}

/** `count` requests with the same options, `batch` at a time; their responses in order. */
async function requestUploads(count, options, batch = 5) {
  const responses = [];
  while (responses.length < count) {
    const size = Math.min(batch, count - responses.length);
    const requests = Array.from({ length: size }, () => requestUpload(options));
    responses.push(...await Promise.all(requests));
  }
  return responses;
}

function idpToken(key, subject, overrides = {}, header = {}) {
  return signWithKey(key, claimsFor(subject, IDP, overrides), header);
}

// ---------------------------------------------------------------------------------------
// Assertions

/** An answer fit for a failure message: presigned URLs lose their signature. */
function shown(response) {
  const text = response.text.replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1<redacted>');
  return `answered ${response.status}: ${text}`;
}

function assertError(response, status, code) {
  assert.equal(response.status, status, shown(response));
  assert.equal(response.body?.error?.code, code, shown(response));
  assert.equal(typeof response.body.error.message, 'string');
}

/** 401 with WWW-Authenticate; with a test context `t`, the message becomes a diagnostic. */
function assertUnauthorized(response, t) {
  assertError(response, 401, 'unauthorized');
  assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer\b/i);
  t?.diagnostic(`401: ${response.body.error.message}`);
}

/** 201, and the key lies under `users/<owner>/<uuid>/a.png`. */
function assertSignedFor(response, owner) {
  assert.equal(response.status, 201, shown(response));
  const pattern = new RegExp(`^users/${escapeRegExp(owner)}/${UUID}/a\\.png$`);
  assert.match(response.body.key, pattern);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Waits until `seconds` and a little have passed since the last fetch of `path`. */
async function waitPastMinRefetch(path, seconds = MIN_REFETCH_SECONDS) {
  const last = idp.lastFetchAt(path) ?? 0;
  const wait = last + seconds * 1000 + 200 - Date.now();
  if (wait > 0) await sleep(wait);
}

/**
 * The most fetches a key set may have had in `elapsedMs` of requests naming unknown
 * kids: one at once, then one per `jwksMinRefetchSeconds`. The Worker's clock counts
 * whole seconds, so two fetches may be as little as a second apart (MIN_REFETCH_SECONDS
 * is 2).
 */
function refetchBound(elapsedMs) {
  return 1 + Math.floor(elapsedMs / 1000);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function encodePart(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** An HS256 token over `claims` made with `secret`, by hand, as an attacker would. */
function hmacToken(claims, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${encodePart(header)}.${encodePart(claims)}`;
  const signature = createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${signature}`;
}

// ---------------------------------------------------------------------------------------

describe('tokens signed with published keys', () => {
  test('RS256 and ES256 tokens get 201 and a key under users/~idp-<sub>/', async () => {
    const rs = await requestUpload({ bearer: await idpToken(keys.rsa, 'alice-rs') });
    const es = await requestUpload({ bearer: await idpToken(keys.ec, 'alice-es') });

    assertSignedFor(rs, '~idp-alice-rs');
    assertSignedFor(es, '~idp-alice-es');
    assert.equal(idp.fetches(JWKS_PATH), 1, 'the key set is fetched once for both');
  });

  test("wrangler.toml's API key and HS256 issuer still work next to them", async () => {
    const apiKey = await requestUpload({ bearer: API_KEY });
    const hs256 = await requestUpload({ bearer: await signJwt(jwtClaims('hs-user')) });

    assertSignedFor(apiKey, API_KEY_OWNER);
    assertSignedFor(hs256, 'hs-user');
  });

  test('a key set is used for its max-age: 20 requests fetch nothing more', async () => {
    const token = await idpToken(keys.rsa, 'cached-user');
    const before = idp.fetches(JWKS_PATH);

    const responses = await requestUploads(20, { bearer: token });

    for (const response of responses) assertSignedFor(response, '~idp-cached-user');
    assert.equal(idp.fetches(JWKS_PATH), before);
  });
});

describe('attacks on token verification', () => {
  test('alg none gets 401', async (t) => {
    const claims = claimsFor('mallory', IDP);

    assertUnauthorized(await requestUpload({ bearer: unsignedJwt(claims) }), t);
    const withKid = `${encodePart({ alg: 'none', kid: keys.rsa.kid })}.${encodePart(claims)}.`;
    assertUnauthorized(await requestUpload({ bearer: withKid }), t);
  });

  test("HS256 with the RSA public key's PEM or JWK as secret gets 401", async (t) => {
    const claims = claimsFor('mallory', IDP);
    const header = { alg: 'HS256', typ: 'JWT', kid: keys.rsa.kid };

    for (const secret of [keys.rsa.pem, JSON.stringify(keys.rsa.jwk)]) {
      assertUnauthorized(await requestUpload({ bearer: hmacToken(claims, secret, header) }), t);
    }
  });

  test('a kid that is not in the key set gets 401', async (t) => {
    const token = await idpToken(keys.rsa, 'mallory', {}, { kid: 'no-such-kid' });

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('a key outside the set that names a published kid gets 401', async (t) => {
    const token = await idpToken(keys.impostor, 'mallory');

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('an expired token gets 401', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const token = await idpToken(keys.rsa, 'alice-rs', { iat: now - 1200, exp: now - 600 });

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('a token for another audience gets 401', async (t) => {
    const token = await idpToken(keys.ec, 'alice-es', { aud: 'another-service' });

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('an ES256 token whose kid names the RSA key gets 401', async (t) => {
    const token = await idpToken(keys.ec, 'mallory', {}, { kid: keys.rsa.kid });

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('a published key that cannot be imported (n not base64url) gets 401', async (t) => {
    const token = await idpToken(keys.rsa, 'alice-rs', {}, { kid: MALFORMED_JWK.kid });

    assertUnauthorized(await requestUpload({ bearer: token }), t);
  });

  test('a key set that cannot be fetched gets 503 auth_unavailable, not 401', async (t) => {
    const unreachable = await signWithKey(keys.rsa, claimsFor('alice', UNREACHABLE));
    const failing = await signWithKey(keys.rsa, claimsFor('alice', FAILING));

    for (const bearer of [unreachable, unreachable, failing]) {
      const response = await requestUpload({ bearer });
      assertError(response, 503, 'auth_unavailable');
      t.diagnostic(`503: ${response.body.error.message}`);
      assert.ok(response.headers.get('retry-after'), 'a 503 says when to retry');
    }
    assert.ok(idp.fetches(FAILING_PATH) >= 1, 'the failing key server was asked');
  });
});

describe('key sets are fetched again on rotation, not per request', () => {
  test('requests naming unknown kids one after another fetch at most once a period', async () => {
    await waitPastMinRefetch(JWKS_PATH);
    const token = await idpToken(keys.rsa, 'mallory', {}, { kid: 'unknown-sequential' });
    const before = idp.fetches(JWKS_PATH);
    const started = Date.now();

    for (let i = 0; i < 10; i += 1) assertUnauthorized(await requestUpload({ bearer: token }));

    const fetched = idp.fetches(JWKS_PATH) - before;
    assert.ok(fetched >= 1, 'an unknown kid makes the Worker look for a rotated key set');
    assert.ok(fetched <= refetchBound(Date.now() - started), `${fetched} fetches`);
  });

  test('concurrent requests naming unknown kids fetch at most once a period', async () => {
    // A key server that takes a moment to answer, as a distant one does.
    publishFirstKeySet({ delayMs: 300 });
    await waitPastMinRefetch(JWKS_PATH);
    const token = await idpToken(keys.rsa, 'mallory', {}, { kid: 'unknown-concurrent' });
    const before = idp.fetches(JWKS_PATH);
    const started = Date.now();

    const responses = await requestUploads(20, { bearer: token }, 20);

    publishFirstKeySet();
    for (const response of responses) assertUnauthorized(response);
    const fetched = idp.fetches(JWKS_PATH) - before;
    const bound = refetchBound(Date.now() - started);
    assert.ok(fetched <= bound, `${fetched} fetches for 20 requests, at most ${bound} expected`);
  });

  test('a token with the kid of a new key set passes without restarting the Worker', async () => {
    idp.publish(JWKS_PATH, keySet([keys.rotated, keys.ec]), {
      cacheControl: `public, max-age=${MAX_AGE_SECONDS}`,
    });
    await waitPastMinRefetch(JWKS_PATH);
    const before = idp.fetches(JWKS_PATH);

    const rotated = await requestUpload({ bearer: await idpToken(keys.rotated, 'rotated-user') });

    assertSignedFor(rotated, '~idp-rotated-user');
    assert.equal(idp.fetches(JWKS_PATH), before + 1, 'one fetch found the new key');
    const token = await idpToken(keys.rotated, 'rotated-user');
    const again = await requestUploads(20, { bearer: token });
    for (const response of again) assertSignedFor(response, '~idp-rotated-user');
    assert.equal(idp.fetches(JWKS_PATH), before + 1, 'and the new set is kept');
  });

  test('a key the new set no longer has is refused', async (t) => {
    await waitPastMinRefetch(JWKS_PATH);

    const response = await requestUpload({ bearer: await idpToken(keys.rsa, 'alice-rs') });

    assertUnauthorized(response, t);
  });
});

describe('Cloudflare Access', () => {
  const accessClaims = (subject, overrides = {}) => claimsFor(subject, ACCESS, overrides);

  test('an assertion without Authorization gets a key under users/~access-<sub>/', async () => {
    const assertion = await signWithKey(keys.access, accessClaims('carol'));

    const response = await requestUpload({ access: assertion });

    assertSignedFor(response, '~access-carol');
    assert.equal(idp.fetches(CERTS_PATH), 1);
  });

  test('an assertion for another application (aud) gets 401', async (t) => {
    const assertion = await signWithKey(keys.access, accessClaims('carol', { aud: 'other-aud' }));

    assertUnauthorized(await requestUpload({ access: assertion }), t);
  });
});

describe('rate limit', () => {
  test(`past ${RATE_LIMIT} signing requests a minute, 429 with Retry-After`, async (t) => {
    const token = await idpToken(keys.ec, 'rate-limited-user');
    const statuses = new Map();
    let limited;
    let total = 0;
    const fetchesBefore = idp.fetches(JWKS_PATH);
    const started = Date.now();
    const startMinute = Math.floor(started / 60_000);

    // Batches until the limit answers, a little past RATE_LIMIT requests as a rule.
    while (total < RATE_MAX_REQUESTS && (total < RATE_LIMIT + RATE_BATCH || !limited)) {
      const responses = await requestUploads(RATE_BATCH, { bearer: token }, RATE_BATCH);
      total += responses.length;
      for (const response of responses) {
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 429) limited ??= response;
      }
    }
    const oneMinute = Math.floor(Date.now() / 60_000) === startMinute;

    const counts = JSON.stringify(Object.fromEntries(statuses));
    const perSecond = Math.round(total / ((Date.now() - started) / 1000));
    t.diagnostic(`${total} requests, ${perSecond}/s: ${counts}`);
    assert.deepEqual([...statuses.keys()].sort(), [201, 429], `statuses: ${counts}`);
    assertError(limited, 429, 'rate_limited');
    assert.match(limited.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
    // Within one window of the local limiter, exactly the limit passes.
    if (oneMinute) assert.equal(statuses.get(201), RATE_LIMIT, `statuses: ${counts}`);
    assert.equal(idp.fetches(JWKS_PATH), fetchesBefore, 'no request fetched the key set');
  });
});

describe('the audit log', () => {
  test('has a line for every request and no secret, token or signature', async () => {
    const lines = await auditLinesFor(sent.map((request) => request.requestId));
    const output = worker.fullOutput();

    for (const line of lines.values()) {
      for (const field of ['requestId', 'route', 'decision', 'status']) {
        assert.ok(line[field], `${field} missing in ${JSON.stringify(line)}`);
      }
    }
    for (const { requestId, status } of sent) {
      const line = lines.get(requestId);
      assert.ok(line, `no audit line for ${requestId}`);
      assert.equal(line.route, 'create-upload');
      assert.equal(line.status, status, JSON.stringify(line));
      assert.equal(line.decision, decisionFor(status), JSON.stringify(line));
    }
    for (const [name, secret] of secretsNotToLog()) {
      assert.ok(!output.includes(secret), `${name} appears in the Worker's output`);
    }
    assert.doesNotMatch(output, /X-Amz-Signature/i);
  });
});

function decisionFor(status) {
  if (status < 400) return 'allowed';
  return status >= 500 ? 'error' : 'refused';
}

/**
 * The audit lines (JSON objects with a `decision`) of the Worker's output by request id,
 * once every id in `expected` has one or five seconds have passed.
 */
async function auditLinesFor(expected) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = new Map();
    for (const text of worker.fullOutput().split('\n')) {
      const line = parseObject(text.trim());
      if (line && 'decision' in line) lines.set(line.requestId ?? `(no id) ${text}`, line);
    }
    if (expected.every((id) => lines.has(id)) || Date.now() > deadline) return lines;
    await sleep(200);
  }
}

function parseObject(text) {
  if (!text.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** [name, value] of what must never be logged: secrets, each credential and its signature. */
function secretsNotToLog() {
  const secrets = [
    ['the API key', API_KEY],
    ['the HS256 secret', JWT_SECRET],
    ['the upload-token secret', TEST_ENV.TOKEN_SECRET],
    ["the store's secret access key", TEST_ENV.DEV_R2_SECRET_ACCESS_KEY],
  ];
  let n = 0;
  for (const credential of credentialsSent) {
    n += 1;
    secrets.push([`credential #${n}`, credential]);
    const signature = credential.split('.')[2];
    if (signature) secrets.push([`the signature of credential #${n}`, signature]);
  }
  return secrets;
}
