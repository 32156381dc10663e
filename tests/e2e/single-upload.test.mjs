// End to end: a client asks the Worker for a single presigned PUT and sends the file to
// the local R2 store that `wrangler dev` serves over S3. What landed is read back with our
// own S3 client (aws4fetch), never through the Worker.
//
// Run: bash scripts/test --e2e-only   (or: node --test 'tests/e2e/**/*.test.mjs')

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import {
  API_KEY,
  API_KEY_OWNER,
  BUCKET,
  ROOT,
  callApi,
  createUpload,
  jwtClaims,
  objectStore,
  randomBytes,
  sha256,
  sha256Base64,
  signJwt,
  startWorker,
  unsignedJwt,
  useWorker,
} from './harness.mjs';

const worker = useWorker();

const MiB = 1024 * 1024;
const PROFILE_MAX_SIZE = 5368709120;
const PROFILE_EXPIRES_IN = 900;
const STORE_PATH = `/cdn-cgi/local/r2/s3/${BUCKET}/`;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------
// Helpers

function uploadRequest(overrides = {}) {
  return { filename: 'photo.png', contentType: 'image/png', size: 1234, ...overrides };
}

/** POST /v1/uploads, asserting 201, and returns the answer's JSON. */
async function presign(request, credential = API_KEY) {
  const response = await createUpload(worker, request, credential);
  const answer = `POST /v1/uploads answered ${response.status}: ${redacted(response.text)}`;
  assert.equal(response.status, 201, answer);
  return response.body;
}

/** PUTs `body` to a presigned URL with `headers` (Node's fetch checks content-length). */
function putToStore(url, headers, body) {
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  return fetch(url, { method: 'PUT', headers, body, signal });
}

/** Presigns an upload of `body` and sends it with exactly the returned headers. */
async function uploadThroughWorker(body, overrides = {}) {
  const upload = await presign(uploadRequest({
    contentType: 'application/octet-stream',
    size: body.length,
    ...overrides,
  }));
  const response = await putToStore(upload.url, upload.headers, body);
  assert.equal(response.status, 200, `PUT answered ${response.status}: ${await response.text()}`);
  return upload;
}

async function readStoredObject(key) {
  const response = await objectStore(worker).getObject(key);
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes };
}

async function assertNothingStoredAt(key) {
  const stored = await readStoredObject(key);
  assert.equal(stored.status, 404, `expected no object at ${key}, found one`);
}

function assertError(response, status, code, field) {
  const answer = redacted(response.text);
  assert.equal(response.status, status, answer);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/);
  assert.equal(response.body?.error?.code, code, answer);
  assert.equal(typeof response.body.error.message, 'string');
  assert.notEqual(response.body.error.message, '');
  if (field !== undefined) assert.equal(response.body.error.field, field, answer);
}

/** An answer fit for a failure message: presigned URLs lose their signature. */
function redacted(text) {
  return text.replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1<redacted>');
}

function assertUnauthorized(response) {
  assertError(response, 401, 'unauthorized');
  assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer\b/i);
}

function assertKeyUnderSubject(key, subject) {
  const prefix = `users/${subject}/`;
  assert.ok(key.startsWith(prefix), `key ${JSON.stringify(key)} is not under ${prefix}`);
  const segments = key.slice(prefix.length).split('/');
  for (const segment of segments) {
    const message = `key ${JSON.stringify(key)} has a '${segment}' segment`;
    assert.ok(!['', '.', '..'].includes(segment), message);
  }
}

/** The object key that a presigned URL's path names, as a URL parser resolves it. */
function keyInUrl(url) {
  const { pathname } = new URL(url);
  assert.ok(pathname.startsWith(STORE_PATH), `URL path ${pathname} is not in ${STORE_PATH}`);
  return pathname.slice(STORE_PATH.length).split('/').map(decodeURIComponent).join('/');
}

function crateVersion() {
  const manifest = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8');
  return /^\[package\][^[]*?^version\s*=\s*"([^"]+)"/m.exec(manifest)[1];
}

// ---------------------------------------------------------------------------------------

describe('GET /v1/health', () => {
  test('answers ok and the crate version without credentials', async () => {
    const response = await callApi(worker, '/v1/health', { method: 'GET' });

    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { status: 'ok', version: crateVersion() });
  });

  // A deploy check or load balancer that asks /v1/health must not see a Worker whose
  // every signing request would fail as healthy.
  test('answers 500 config_invalid naming the setting when the configuration does not load', async () => {
    const broken = await startWorker({ vars: { CORS: { allowedOrigins: 'not-a-list' } }, healthStatus: 500 });
    try {
      const response = await callApi(broken, '/v1/health', { method: 'GET' });

      assertError(response, 500, 'config_invalid');
      assert.match(response.body.error.message, /CORS\.allowedOrigins/);
      assert.doesNotMatch(response.text, /not-a-list/, 'the value is never shown');
    } finally {
      await broken.stop();
    }
  });
});

describe('POST /v1/uploads: a single presigned PUT', () => {
  test('the API key gets a PUT URL for a key under its subject', async () => {
    const upload = await presign(uploadRequest());

    assert.equal(upload.type, 'single');
    assert.equal(upload.bucket, BUCKET);
    assert.equal(upload.method, 'PUT');
    assert.match(upload.key, new RegExp(`^users/${API_KEY_OWNER}/${UUID}/photo\\.png$`));
    assert.equal(keyInUrl(upload.url), upload.key);
    assert.equal(new URL(upload.url).port, String(worker.port), 'the URL names this local store');
  });

  test('the returned headers carry type, size, no-overwrite and the profile metadata', async () => {
    const upload = await presign(uploadRequest());

    assert.equal(upload.headers['content-type'], 'image/png');
    assert.equal(upload.headers['content-length'], '1234');
    assert.equal(upload.headers['if-none-match'], '*');
    assert.equal(upload.headers['x-amz-meta-uploader'], 'edge-presigner');
  });

  test('every returned header is covered by the URL signature', async () => {
    const upload = await presign(uploadRequest());

    const signed = new URL(upload.url).searchParams.get('X-Amz-SignedHeaders').split(';');
    assert.ok(signed.includes('host'));
    for (const name of Object.keys(upload.headers)) {
      assert.ok(signed.includes(name.toLowerCase()), `${name} is not in SignedHeaders ${signed}`);
    }
  });

  test('expiresAt is the profile expiry after the signing time in the URL', async () => {
    const before = Date.now();
    const upload = await presign(uploadRequest());

    const query = new URL(upload.url).searchParams;
    assert.equal(query.get('X-Amz-Expires'), String(PROFILE_EXPIRES_IN));
    assert.match(upload.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)$/);
    const signedAt = Date.parse(query.get('X-Amz-Date').replace(
      /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
    assert.equal(Date.parse(upload.expiresAt), signedAt + PROFILE_EXPIRES_IN * 1000);
    assert.ok(Math.abs(signedAt - before) < 60_000, 'the URL is signed with the current time');
  });

  test('an HS256 JWT gets a PUT URL for a key under its sub claim', async () => {
    const token = await signJwt(jwtClaims('user-42'));

    const upload = await presign(uploadRequest(), token);

    assert.equal(upload.type, 'single');
    assert.match(upload.key, new RegExp(`^users/user-42/${UUID}/photo\\.png$`));
  });
});

describe('POST /v1/uploads: refused credentials', () => {
  test('a request without Authorization gets 401 with WWW-Authenticate: Bearer', async () => {
    assertUnauthorized(await callApi(worker, '/v1/uploads', { json: uploadRequest() }));
  });

  test('a wrong API key gets 401', async () => {
    assertUnauthorized(await createUpload(worker, uploadRequest(), 'not-the-api-key'));
  });

  test('an expired JWT gets 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await signJwt(jwtClaims('user-42', { iat: now - 1200, exp: now - 600 }));

    assertUnauthorized(await createUpload(worker, uploadRequest(), token));
  });

  test('a JWT with alg none gets 401', async () => {
    const token = unsignedJwt(jwtClaims('user-42'));

    assertUnauthorized(await createUpload(worker, uploadRequest(), token));
  });

  test('a JWT signed with another secret gets 401', async () => {
    const token = await signJwt(jwtClaims('user-42'), 'some-other-secret-0123456789abcdef01234');

    assertUnauthorized(await createUpload(worker, uploadRequest(), token));
  });

  test('a JWT for another audience gets 401', async () => {
    const token = await signJwt(jwtClaims('user-42', { aud: 'someone-else' }));

    assertUnauthorized(await createUpload(worker, uploadRequest(), token));
  });

  test('a JWT from another issuer gets 401', async () => {
    const token = await signJwt(jwtClaims('user-42', { iss: 'someone-else' }));

    assertUnauthorized(await createUpload(worker, uploadRequest(), token));
  });
});

describe('the presigned PUT at the store', () => {
  test('a 1 MiB file sent with exactly the returned headers lands intact', async () => {
    const body = randomBytes(MiB);

    const upload = await uploadThroughWorker(body);

    const stored = await readStoredObject(upload.key);
    assert.equal(stored.status, 200);
    assert.equal(sha256(stored.bytes), sha256(body));
    assert.equal(stored.headers.get('content-type'), 'application/octet-stream');
    assert.equal(stored.headers.get('x-amz-meta-uploader'), 'edge-presigner');
    const listed = await objectStore(worker).listObjects(upload.key);
    const keysAndSizes = listed.map(({ key, size }) => ({ key, size }));
    assert.deepEqual(keysAndSizes, [{ key: upload.key, size: MiB }]);
  });

  // The URL signs x-amz-checksum-sha256, but wrangler dev's local store does not check
  // it: a different body of the same size lands there (measured). Only a store that
  // checks it (R2, S3, SeaweedFS) can show that a wrong body is refused.
  test('a declared checksumSha256 goes out as x-amz-checksum-sha256; the file lands', async () => {
    const body = randomBytes(64 * 1024);
    const checksum = sha256Base64(body);

    const upload = await uploadThroughWorker(body, { checksumSha256: checksum });

    assert.equal(upload.headers['x-amz-checksum-sha256'], checksum);
    const stored = await readStoredObject(upload.key);
    assert.equal(sha256(stored.bytes), sha256(body));
  });

  test('the store refuses the URL with another content type', async () => {
    const body = randomBytes(1000);
    const upload = await presign(uploadRequest({ contentType: 'image/png', size: body.length }));

    const headers = { ...upload.headers, 'content-type': 'image/jpeg' };
    const response = await putToStore(upload.url, headers, body);

    assert.equal(response.status, 403);
    await assertNothingStoredAt(upload.key);
  });

  test('the store refuses the URL with a body of another size', async () => {
    const upload = await presign(uploadRequest({ size: 1000 }));
    const body = randomBytes(1001);

    const headers = { ...upload.headers, 'content-length': String(body.length) };
    const response = await putToStore(upload.url, headers, body);

    assert.equal(response.status, 403);
    await assertNothingStoredAt(upload.key);
  });

  test('the store refuses the URL when the key in its path is changed', async () => {
    const body = randomBytes(1000);
    const upload = await presign(uploadRequest({ size: body.length }));

    const url = new URL(upload.url);
    url.pathname = url.pathname.replace(/photo\.png$/, 'other.png');
    const response = await putToStore(url.href, upload.headers, body);

    assert.equal(response.status, 403);
    await assertNothingStoredAt(keyInUrl(url.href));
  });

  test('the store refuses the URL when its signature is changed', async () => {
    const body = randomBytes(1000);
    const upload = await presign(uploadRequest({ size: body.length }));

    const url = new URL(upload.url);
    const signature = url.searchParams.get('X-Amz-Signature');
    const flipped = (signature.at(-1) === '0' ? '1' : '0');
    url.searchParams.set('X-Amz-Signature', signature.slice(0, -1) + flipped);
    const response = await putToStore(url.href, upload.headers, body);

    assert.equal(response.status, 403);
    await assertNothingStoredAt(upload.key);
  });

  test('the store refuses the URL without the signed If-None-Match header', async () => {
    const body = randomBytes(1000);
    const upload = await presign(uploadRequest({ size: body.length }));

    const { 'if-none-match': _ifNoneMatch, ...headers } = upload.headers;
    const response = await putToStore(upload.url, headers, body);

    assert.equal(response.status, 403);
    await assertNothingStoredAt(upload.key);
  });

  test('a second PUT to the same URL gets 412 and leaves the first file in place', async () => {
    const first = randomBytes(1000);
    const upload = await uploadThroughWorker(first);

    const second = randomBytes(first.length);
    const response = await putToStore(upload.url, upload.headers, second);

    assert.equal(response.status, 412, await response.text());
    const stored = await readStoredObject(upload.key);
    assert.equal(sha256(stored.bytes), sha256(first));
  });
});

describe('POST /v1/uploads: the profile limits', () => {
  test('a content type outside the profile gets 415', async () => {
    const request = uploadRequest({ contentType: 'application/x-msdownload' });

    const response = await createUpload(worker, request);

    assertError(response, 415, 'unsupported_media_type');
  });

  // An SVG opened from the store runs its scripts on the store's origin, which under
  // `wrangler dev` is the demo page's own: wrangler.toml lists image types one by one.
  test('the shipped default profile refuses SVG with 415', async () => {
    const request = uploadRequest({ filename: 'x.svg', contentType: 'image/svg+xml' });

    const response = await createUpload(worker, request);

    assertError(response, 415, 'unsupported_media_type', 'contentType');
  });

  test('a content type matched by a wildcard of the profile is accepted', async () => {
    const upload = await presign(uploadRequest({ filename: 'clip.mp4', contentType: 'video/mp4' }));

    assert.equal(upload.headers['content-type'], 'video/mp4');
  });

  test('a size over the profile maximum gets 413', async () => {
    const response = await createUpload(worker, uploadRequest({ size: PROFILE_MAX_SIZE + 1 }));

    assertError(response, 413, 'too_large');
  });
});

describe('POST /v1/uploads: keys from hostile filenames', () => {
  // These must be cleaned into a key under the subject's prefix.
  for (const filename of ['../../etc/passwd', 'a/../../b']) {
    test(`the filename ${JSON.stringify(filename)} yields a key under the subject`, async () => {
      const upload = await presign(uploadRequest({ filename }));

      assertKeyUnderSubject(upload.key, API_KEY_OWNER);
      assert.equal(keyInUrl(upload.url), upload.key, 'a URL parser finds the same key');
    });
  }

  // The contract does not say whether these are cleaned or refused: either is safe.
  const others = ['..', '/etc/passwd', '..\\..\\boot.ini', '%2e%2e', '..%2f..%2fpasswd'];
  for (const filename of others) {
    test(`the filename ${JSON.stringify(filename)} yields a safe key or a 400`, async () => {
      const response = await createUpload(worker, uploadRequest({ filename }));

      if (response.status !== 201) {
        assertError(response, 400, 'invalid_request', 'filename');
        return;
      }
      assertKeyUnderSubject(response.body.key, API_KEY_OWNER);
      assert.equal(keyInUrl(response.body.url), response.body.key);
    });
  }

  test('an upload named ../../etc/passwd lands under users/<subject>/', async () => {
    const body = randomBytes(100);

    const upload = await uploadThroughWorker(body, { filename: '../../etc/passwd' });

    const everything = await objectStore(worker).listObjects('');
    assert.ok(everything.some(({ key }) => key === upload.key));
    for (const { key } of everything) {
      assert.ok(key.startsWith('users/'), `${key} is outside users/`);
    }
  });
});

describe('POST /v1/uploads: malformed requests', () => {
  test('a request body over 64 KiB gets 413', async () => {
    const metadata = { caption: 'x'.repeat(65 * 1024) };

    const response = await createUpload(worker, uploadRequest({ metadata }));

    assertError(response, 413, 'too_large');
  });

  test('a body that is not JSON gets 400 invalid_request', async () => {
    const response = await callApi(worker, '/v1/uploads', {
      credential: API_KEY,
      rawBody: '{"filename": "photo.png",',
      headers: { 'content-type': 'application/json' },
    });

    assertError(response, 400, 'invalid_request');
  });

  // API.md: only profile, checksumSha256, metadata and multipart are optional.
  for (const field of ['filename', 'contentType', 'size']) {
    test(`a request without ${field} gets 400 naming the field`, async () => {
      const { [field]: _leftOut, ...request } = uploadRequest();

      assertError(await createUpload(worker, request), 400, 'invalid_request', field);
    });
  }

  test('a negative size gets 400 naming the field', async () => {
    const response = await createUpload(worker, uploadRequest({ size: -1 }));

    assertError(response, 400, 'invalid_request', 'size');
  });

  test('a size that is not a number gets 400 naming the field', async () => {
    const response = await createUpload(worker, uploadRequest({ size: '1234' }));

    assertError(response, 400, 'invalid_request', 'size');
  });
});

describe('routing', () => {
  test('an unknown route under /v1 gets 404 not_found', async () => {
    const options = { method: 'GET', credential: API_KEY };

    const response = await callApi(worker, '/v1/no-such-route', options);

    assertError(response, 404, 'not_found');
  });

  test('GET /v1/uploads gets 405 with Allow: POST', async () => {
    const response = await callApi(worker, '/v1/uploads', { method: 'GET', credential: API_KEY });

    assertError(response, 405, 'method_not_allowed');
    assert.match(response.headers.get('allow') ?? '', /\bPOST\b/);
  });
});
