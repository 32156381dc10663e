// End to end: bad input at the edges of the API, sent to the Worker under `wrangler dev`.
// Each request must get a 4xx JSON error with the code of API.md's table, naming the
// field at fault where one field is at fault; none may leave anything in the store (the
// bucket is listed with our own S3 client before and after, never through the Worker);
// and no error body may carry a secret of tests/e2e/test.env.
//
// Run: node --test --test-concurrency=1 tests/e2e/bad-input.test.mjs

import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import {
  API_KEY,
  API_KEY_OWNER,
  JWT_SECRET,
  TEST_ENV,
  callApi,
  createUpload,
  jwtClaims,
  objectStore,
  signJwt,
  useWorker,
} from './harness.mjs';

const worker = useWorker();

const KiB = 1024;
const MiB = 1024 * KiB;
const PROFILE_MAX_SIZE = 5368709120;
const MAX_PARTS = 10_000;
const OWNER_PREFIX = `users/${API_KEY_OWNER}/`;
const REQUEST_TIMEOUT_MS = 30_000;

const SECRETS = {
  API_KEY_DEMO: API_KEY,
  JWT_SECRET,
  TOKEN_SECRET: TEST_ENV.TOKEN_SECRET,
  DEV_R2_SECRET_ACCESS_KEY: TEST_ENV.DEV_R2_SECRET_ACCESS_KEY,
};

/** Every error answer this file received, for the secret check at its end. */
const errorBodies = [];

// ---------------------------------------------------------------------------------------
// Helpers

function uploadRequest(overrides = {}) {
  return { filename: 'photo.png', contentType: 'image/png', size: 1234, ...overrides };
}

/** POST /v1/uploads with a body sent byte for byte as given, as JSON unless told. */
function postRaw(rawBody, headers = { 'content-type': 'application/json' }, route = '/v1/uploads') {
  return callApi(worker, route, { credential: API_KEY, rawBody, headers });
}

/** The JSON text of uploadRequest() with `extra` spliced in before the closing brace. */
function uploadJsonWith(extra) {
  return JSON.stringify(uploadRequest()).replace(/}$/, `,${extra}}`);
}

function assertError(response, status, code, field) {
  errorBodies.push(response.text);
  const answer = response.text.slice(0, 500);
  assert.equal(response.status, status, answer);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/, answer);
  assert.equal(response.body?.error?.code, code, answer);
  assert.equal(typeof response.body.error.message, 'string');
  assert.notEqual(response.body.error.message, '');
  if (field !== undefined) assert.equal(response.body.error.field, field, answer);
  assertNoSecretIn(response.text);
}

function assertNoSecretIn(text) {
  for (const [name, secret] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(secret), `the answer carries ${name}`);
  }
}

/** The API key's objects as `key size`, sorted, seen with our own client. */
async function ownerObjects() {
  const listed = await objectStore(worker).listObjects(OWNER_PREFIX);
  return listed.map(({ key, size }) => `${key} ${size}`).sort();
}

/** Runs `fn` and asserts that the API key's prefix holds the same objects afterwards. */
async function leavesStoreUnchanged(fn) {
  const before = await ownerObjects();
  await fn();
  assert.deepEqual(await ownerObjects(), before, 'the store changed under ' + OWNER_PREFIX);
}

/** A test whose request must change nothing in the store. */
function storeTest(name, fn, options = {}) {
  test(name, options, () => leavesStoreUnchanged(fn));
}

// ---------------------------------------------------------------------------------------

describe('request bodies that are not a small JSON object', () => {
  storeTest('a JSON body over 64 KiB gets 413 too_large', async () => {
    const body = JSON.stringify(uploadRequest({ metadata: { caption: 'x'.repeat(65 * KiB) } }));

    assertError(await postRaw(body), 413, 'too_large');
  });

  storeTest('a body over 64 KiB streamed without Content-Length gets 413 too_large', async () => {
    const bytes = Buffer.from(
      JSON.stringify(uploadRequest({ metadata: { caption: 'x'.repeat(65 * KiB) } })));
    const stream = new ReadableStream({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 8 * KiB) {
          controller.enqueue(bytes.subarray(at, at + 8 * KiB));
        }
        controller.close();
      },
    });

    const response = await fetch(worker.url('/v1/uploads'), {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }

    assertError({ status: response.status, headers: response.headers, text, body },
      413, 'too_large');
  });

  storeTest('10,000 nested arrays in metadata get 400 invalid_request', async () => {
    const depth = 10_000;
    const body = uploadJsonWith(`"metadata":{"caption":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    assert.ok(body.length < 64 * KiB, 'the body stays under the size limit');

    assertError(await postRaw(body), 400, 'invalid_request');
  });

  storeTest('a JSON body sent as text/plain gets 415 unsupported_media_type', async () => {
    const body = JSON.stringify(uploadRequest());

    const response = await postRaw(body, { 'content-type': 'text/plain' });

    assertError(response, 415, 'unsupported_media_type');
  });

  storeTest('invalid UTF-8 bytes inside the filename string get 400 invalid_request', async () => {
    const [head, tail] = JSON.stringify(uploadRequest({ filename: 'a@b.png' })).split('@');
    const invalid = Buffer.from([0xff, 0xfe, 0xc3]); // never valid UTF-8 in this order
    const body = Buffer.concat([Buffer.from(head), invalid, Buffer.from(tail)]);

    assertError(await postRaw(body), 400, 'invalid_request');
  });

  storeTest('a JSON array instead of an object gets 400 invalid_request', async () => {
    const body = JSON.stringify([uploadRequest()]);

    assertError(await postRaw(body), 400, 'invalid_request');
  });

  for (const [field, first, second] of [
    ['filename', '"a.png"', '"b.png"'],
    ['size', '1', String(PROFILE_MAX_SIZE * 4)],
  ]) {
    storeTest(`a duplicate ${field} key gets 400 naming ${field}`, async () => {
      const request = uploadRequest();
      delete request[field];
      const body = JSON.stringify(request)
        .replace(/}$/, `,"${field}":${first},"${field}":${second}}`);

      assertError(await postRaw(body), 400, 'invalid_request', field);
    });
  }

  storeTest('an unknown field gets 400 naming it', async () => {
    const response = await createUpload(worker, uploadRequest({ colour: 'red' }));

    assertError(response, 400, 'invalid_request', 'colour');
  });

  storeTest('an unknown field from a JWT caller gets 400 naming it', async () => {
    const token = await signJwt(jwtClaims('user-42'));

    const response = await createUpload(worker, uploadRequest({ bucket: 'other' }), token);

    assertError(response, 400, 'invalid_request', 'bucket');
  });
});

describe('POST /v1/uploads: values out of range', () => {
  const badSizes = [
    ['a negative size', '-1'],
    ['a fractional size', '1.5'],
    ['a size of 1e300', '1e300'],
    ['a size of 2^64, beyond an unsigned 64-bit integer', '18446744073709551616'],
    ['a size of 10^30 written in digits', '1000000000000000000000000000000'],
  ];
  for (const [label, size] of badSizes) {
    storeTest(`${label} gets 400 naming size`, async () => {
      const request = uploadRequest();
      delete request.size;
      const body = JSON.stringify(request).replace(/}$/, `,"size":${size}}`);

      assertError(await postRaw(body), 400, 'invalid_request', 'size');
    });
  }

  storeTest('a size one byte over the profile maximum gets 413 too_large', async () => {
    const response = await createUpload(worker, uploadRequest({ size: PROFILE_MAX_SIZE + 1 }));

    assertError(response, 413, 'too_large');
  });

  for (const expiresIn of [1.5, 0]) {
    storeTest(`an upload expiresIn of ${expiresIn} gets 400 naming expiresIn`, async () => {
      const response = await createUpload(worker, uploadRequest({ expiresIn }));

      assertError(response, 400, 'invalid_request', 'expiresIn');
    });

    storeTest(`a download expiresIn of ${expiresIn} gets 400 naming expiresIn`, async () => {
      const key = `${OWNER_PREFIX}00000000-0000-4000-8000-000000000000/photo.png`;

      const response = await callApi(worker, '/v1/downloads', {
        credential: API_KEY,
        json: { key, expiresIn },
      });

      assertError(response, 400, 'invalid_request', 'expiresIn');
    });
  }

  storeTest('a wildcard contentType image/* gets 400 naming contentType', async () => {
    const response = await createUpload(worker, uploadRequest({ contentType: 'image/*' }));

    assertError(response, 400, 'invalid_request', 'contentType');
  });

  // A store sends the signed type back as is; a browser takes the last type of a comma list.
  for (const contentType of ['image/png; a=b, text/html', 'text/plain; charset=utf-8, text/html']) {
    storeTest(`a contentType that hides a second type after a comma (${contentType}) gets 400 naming contentType`, async () => {
      const response = await createUpload(worker, uploadRequest({ contentType }));

      assertError(response, 400, 'invalid_request', 'contentType');
      assert.match(response.body.error.message, /comma/);
    });
  }

  storeTest('the Uppy route refuses a type with a comma too', async () => {
    const query = new URLSearchParams({ filename: 'page.png', type: 'image/png; a=b, text/html', 'metadata[size]': '4' });
    const response = await callApi(worker, `/s3/params?${query}`, { method: 'GET', credential: API_KEY });

    assert.equal(response.status, 400, response.text.slice(0, 300));
    assert.match(response.text, /comma/);
    assert.equal(response.body.error.field, 'type', 'named as Uppy sends it');
  });
});

describe('POST /v1/uploads: invisible and control characters in filenames', () => {
  // The zero-width joiner and non-joiner are kept on purpose: emoji sequences and several
  // scripts need them, so they are not in this list.
  const hostile = [
    ['a right-to-left override (U+202E)', 'invoice\u202Egnp.exe', '\u202E'],
    ['a NUL (U+0000)', 'photo\u0000.png', '\u0000'],
    ['a zero-width space (U+200B)', 'ph\u200Boto.png', '\u200B'],
    ['a word joiner (U+2060)', 'ph\u2060oto.png', '\u2060'],
    ['a byte order mark (U+FEFF)', '\uFEFFphoto.png', '\uFEFF'],
  ];
  for (const [label, filename, characters] of hostile) {
    storeTest(`a filename with ${label} is accepted and its key holds none of it`, async () => {
      const response = await createUpload(worker, uploadRequest({ filename }));

      assert.equal(response.status, 201, response.text.slice(0, 500));
      const { key } = response.body;
      assert.ok(key.startsWith(OWNER_PREFIX), `key ${JSON.stringify(key)} is not under the caller`);
      for (const character of characters) {
        const message = `key ${JSON.stringify(key)} holds ${JSON.stringify(character)}`;
        assert.ok(!key.includes(character), message);
      }
    });
  }
});

describe('POST /v1/multipart/parts: too many part numbers', () => {
  storeTest('10,001 partNumbers with a real token get 400 naming partNumbers', async () => {
    const size = 20 * MiB;
    const created = await createUpload(worker, {
      filename: 'big.bin',
      contentType: 'application/octet-stream',
      size,
      multipart: true,
    });
    assert.equal(created.status, 201, created.text.slice(0, 500));
    const { token, partCount } = created.body;
    assert.ok(partCount >= 1);

    try {
      // Every number is within the plan; only their count is wrong.
      const partNumbers = Array.from({ length: MAX_PARTS + 1 }, (_, i) => (i % partCount) + 1);
      const response = await callApi(worker, '/v1/multipart/parts', {
        credential: API_KEY,
        json: { token, partNumbers },
      });

      assertError(response, 400, 'invalid_request', 'partNumbers');
    } finally {
      await callApi(worker, '/v1/multipart/abort', { credential: API_KEY, json: { token } });
    }
  });
});

describe('a Host header that is not a loopback host', () => {
  // fetch() cannot set Host; node:http can. wrangler dev passes it on to the Worker.
  function postWithHost(path, host, json, headers = {}) {
    return new Promise((resolve, reject) => {
      const body = JSON.stringify(json);
      const request = http.request(worker.url(path), {
        method: 'POST',
        headers: { host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        timeout: REQUEST_TIMEOUT_MS,
      }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => { text += chunk; });
        response.on('end', () => {
          errorBodies.push(text);
          const headers = { get: (name) => response.headers[name.toLowerCase()] ?? null };
          resolve({ status: response.statusCode, headers, text, body: JSON.parse(text || 'null') });
        });
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  for (const host of ['127.0.0.1.nip.io', '127.evil.example', 'localhost.evil.example']) {
    test(`the development login is not served to host ${host}`, async () => {
      const response = await postWithHost('/v1/dev/token', host, {});

      assert.equal(response.status, 404, response.text.slice(0, 300));
    });
  }

  storeTest('an upload to the local R2 bucket through another host gets 400 naming the host, not 500', async () => {
    const response = await postWithHost('/v1/uploads', 'signer.example.com', uploadRequest(), {
      authorization: `Bearer ${API_KEY}`,
    });

    assertError(response, 400, 'invalid_request');
    assert.match(response.body.error.message, /loopback host/);
    assert.match(response.body.error.message, /signer\.example\.com/);
  });
});

describe('after every bad request', () => {
  test('no error body carried a secret of test.env (API key, JWT, token, R2 secrets)', () => {
    assert.ok(errorBodies.length >= 20, `only ${errorBodies.length} error bodies were seen`);
    for (const text of errorBodies) assertNoSecretIn(text);
  });

  test('the bucket holds no object at all', async () => {
    assert.deepEqual(await objectStore(worker).listObjects(''), []);
  });
});
