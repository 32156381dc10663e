// End to end: uploads through a store that fails on purpose. A fault proxy
// (fault-proxy.mjs) sits between SeaweedFS and everyone who talks to it through the
// profile `faults`: the Worker's own calls (create, list parts, complete, abort, HEAD) and
// the client's PUTs to the presigned URLs. It drops connections, delays answers, cuts
// bodies short and answers 500 InternalError, 503 ServiceUnavailable and 503 SlowDown.
//
// What these tests show: each flow either finishes after retries or fails with 502 or 503
// and a message that says what to do; a completed object is always the whole source
// (SHA-256 checked, read straight from SeaweedFS, never through the proxy); a complete
// whose answer was lost can be retried and gives the same object; and an aborted upload
// leaves nothing behind.
//
// Run: node --test --test-concurrency=1 tests/e2e/store-faults.test.mjs
//      (bash scripts/setup --seaweedfs installs SeaweedFS first)

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import { useFaultProxy } from './fault-proxy.mjs';
import {
  API_KEY,
  FAULTS_PROFILE,
  callApi,
  createUpload,
  randomBytes,
  seaweedStore,
  sha256,
  useSeaweedFS,
  useWorker,
} from './harness.mjs';

const MiB = 1024 * 1024;
const PART_SIZE = 8 * MiB; // the default profile's part size
const WORKER_ATTEMPTS = 3; // src/store/retry.rs MAX_ATTEMPTS
const WORKER_ATTEMPT_TIMEOUT_MS = 10_000; // src/store/retry.rs ATTEMPT_TIMEOUT_MS
const CLIENT_ATTEMPTS = 5;
const QUICK_FAILURE_MS = 3000;
const REQUEST_TIMEOUT_MS = 60_000;

const seaweed = useSeaweedFS();
const proxy = useFaultProxy(seaweed);
const worker = useWorker({ seaweed, faultProxy: proxy });

afterEach(() => proxy.clear());

// ---------------------------------------------------------------------------------------
// A client of the Worker, and of the store through the presigned URLs

function api(pathAndQuery, options) {
  return callApi(worker, pathAndQuery, { credential: API_KEY, ...options });
}

function startUpload(size, multipart = true) {
  return createUpload(worker, {
    profile: FAULTS_PROFILE,
    filename: 'fragile.bin',
    contentType: 'application/octet-stream',
    size,
    multipart,
  });
}

/** POST /v1/uploads, asserting 201; the answer. */
async function started(size, multipart = true) {
  const response = await startUpload(size, multipart);
  assert.equal(response.status, 201, `POST /v1/uploads: ${redacted(response.text)}`);
  return response.body;
}

const complete = (token, parts) => api('/v1/multipart/complete', { json: { token, parts } });
const abort = (token) => api('/v1/multipart/abort', { json: { token } });
const listParts = (token) => api(`/v1/multipart/parts?${new URLSearchParams({ token })}`, {
  method: 'GET',
});

async function signedParts(token, partNumbers) {
  const response = await api('/v1/multipart/parts', { json: { token, partNumbers } });
  assert.equal(response.status, 200, `POST /v1/multipart/parts: ${redacted(response.text)}`);
  return response.body.parts;
}

/**
 * PUTs bytes to a presigned URL as a careful client does: a network error or a 5xx is
 * tried again, up to CLIENT_ATTEMPTS times. Resolves to the last answer and the number
 * of tries; a network error on the last try rejects.
 */
async function putWithRetries(url, headers, bytes) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const response = await fetch(url, {
        method: 'PUT',
        headers,
        body: bytes,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      if (response.status < 500 || attempt >= CLIENT_ATTEMPTS) {
        return { status: response.status, etag: response.headers.get('etag'), text, attempt };
      }
    } catch (error) {
      if (attempt >= CLIENT_ATTEMPTS) throw error;
    }
    await sleep(100 * attempt);
  }
}

/** Sends every part of `body` one at a time, with retries; the list for complete. */
async function sendAllParts(upload, body) {
  const numbers = Array.from({ length: upload.partCount }, (_, i) => i + 1);
  const parts = [];
  for (const part of await signedParts(upload.token, numbers)) {
    const start = (part.partNumber - 1) * upload.partSize;
    const bytes = body.subarray(start, start + upload.partSize);
    const sent = await putWithRetries(part.url, part.headers, bytes);
    assert.equal(sent.status, 200, `PUT part ${part.partNumber}: ${sent.status} ${sent.text}`);
    parts.push({ partNumber: part.partNumber, etag: sent.etag });
  }
  return parts;
}

/** A multipart upload of `body` with every part in the store, ready to complete. */
async function uploadedParts(body) {
  const upload = await started(body.length);
  const parts = await sendAllParts(upload, body);
  proxy.clear(); // count only what the test itself does next
  return { upload, parts };
}

/** Three parts: two of 8 MiB and a short last one. */
function threePartBody() {
  return randomBytes(2 * PART_SIZE + 1000);
}

// ---------------------------------------------------------------------------------------
// The store, seen straight (not through the proxy)

function store() {
  return seaweedStore(seaweed);
}

/** The object at `key` is the whole of `body`: same size, same SHA-256. */
async function assertStoredWhole(key, body) {
  const response = await store().getObject(key);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, 200, `GET ${key} at the store answered ${response.status}`);
  assert.equal(bytes.length, body.length, 'the stored object has the size of the source');
  assert.equal(sha256(bytes), sha256(body), 'the stored object has the SHA-256 of the source');
  return response.headers.get('etag');
}

async function assertNoObject(key) {
  const response = await store().headObject(key);
  assert.equal(response.status, 404, `expected no object at ${key}, the store has one`);
}

/** The upload ids the store holds for exactly this key (ListMultipartUploads). */
async function pendingUploads(key) {
  const query = new URLSearchParams({ uploads: '', prefix: key });
  const response = await store().fetch(`${store().bucketUrl}?${query}`);
  const xml = await response.text();
  assert.equal(response.status, 200, `ListMultipartUploads: ${xml}`);
  return [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)]
    .filter(([, upload]) => upload.includes(`<Key>${escapeXml(key)}</Key>`))
    .map(([, upload]) => /<UploadId>([^<]*)<\/UploadId>/.exec(upload)[1]);
}

/** Aborts an upload at the store directly, for clean-up. */
async function abortAtStore(key, uploadId) {
  const query = new URLSearchParams({ uploadId });
  const response = await store().fetch(`${store().objectUrl(key)}?${query}`, { method: 'DELETE' });
  await response.arrayBuffer();
}

// ---------------------------------------------------------------------------------------
// Checks

function assertError(response, status, code) {
  const answer = `${response.status} ${redacted(response.text)}`;
  assert.equal(response.status, status, answer);
  assert.equal(response.body?.error?.code, code, answer);
}

/** Runs `work`, and returns its result and how long it took in ms. */
async function timed(work) {
  const start = performance.now();
  const result = await work();
  return { result, ms: Math.round(performance.now() - start) };
}

/** What the proxy saw, for the log: `complete 200, then dropped, head 200`. */
function describeSeen() {
  return proxy.seen().map((r) => `${r.action} ${r.status}`).join(', ');
}

function redacted(text) {
  return text
    .replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1<redacted>')
    .replace(/("token":")[^"]+/g, '$1<redacted>');
}

// ---------------------------------------------------------------------------------------

describe('the Worker creating a multipart upload at a faulty store', () => {
  const onceFaults = {
    'one 503 SlowDown': { fault: 'error', status: 503, code: 'SlowDown' },
    'one 503 ServiceUnavailable': { fault: 'error', status: 503, code: 'ServiceUnavailable' },
    'one 500 InternalError': { fault: 'error', status: 500, code: 'InternalError' },
    'one connection dropped before the store saw it': { fault: 'drop' },
  };
  for (const [what, fault] of Object.entries(onceFaults)) {
    test(`create survives ${what}: the Worker tries again and answers 201`, async (t) => {
      proxy.inject({ action: 'create', ...fault });

      const { result: response, ms } = await timed(() => startUpload(PART_SIZE + 1));

      assert.equal(response.status, 201, redacted(response.text));
      assert.equal(proxy.tries('create'), 2, 'one failed try, one that passed');
      t.diagnostic(`${what}: 201 after ${proxy.tries('create')} tries, ${ms} ms`);
      assert.equal((await abort(response.body.token)).status, 204);
    });
  }

  test('create whose answer is lost is tried again; the first upload is left unused', async (t) => {
    proxy.inject({ action: 'create', fault: 'drop-after' });

    const response = await startUpload(PART_SIZE + 1);

    assert.equal(response.status, 201, redacted(response.text));
    assert.equal(proxy.tries('create'), 2);
    const { key, uploadId } = response.body;
    const pending = await pendingUploads(key);
    t.diagnostic(`uploads at the store for the new key: ${pending.length}`);
    assert.ok(pending.includes(uploadId), 'the upload the client got is at the store');
    // The lost answer's upload has no parts and nothing refers to it: an incomplete
    // multipart upload that the bucket's lifecycle rule removes (README, "When the store
    // fails").
    assert.equal(pending.length, 2, 'the store also has the upload whose answer was lost');
    for (const id of pending) await abortAtStore(key, id);
  });

  const keepsFailing = {
    '503 SlowDown': [{ fault: 'error', status: 503, code: 'SlowDown' }, 503, 'storage_unavailable'],
    '500 InternalError': [
      { fault: 'error', status: 500, code: 'InternalError' }, 502, 'storage_error',
    ],
    'dropping connections': [{ fault: 'drop' }, 503, 'storage_unavailable'],
  };
  for (const [what, [fault, status, code]] of Object.entries(keepsFailing)) {
    const title = `a store that keeps ${what} gets ${status} ${code} after ${WORKER_ATTEMPTS}`;
    test(`${title} tries, quickly`, async (t) => {
      proxy.inject({ action: 'create', times: Infinity, ...fault });

      const { result: response, ms } = await timed(() => startUpload(PART_SIZE + 1));

      assertError(response, status, code);
      assert.equal(proxy.tries('create'), WORKER_ATTEMPTS);
      assert.ok(ms < QUICK_FAILURE_MS, `took ${ms} ms`);
      if (status === 503) assert.ok(response.headers.get('retry-after'), 'a 503 says when');
      t.diagnostic(`keeps ${what}: ${status} "${response.body.error.message}" after `
        + `${proxy.tries('create')} tries, ${ms} ms`);
    });
  }
});

describe('a store slower than the Worker\'s time limit', () => {
  // The Worker gives each call WORKER_ATTEMPT_TIMEOUT_MS; the harness's client gives up
  // on the Worker after 30 s, so a Worker that hangs fails these tests with a timeout.
  const slowFaults = {
    'answers after the time limit': { fault: 'delay', delayMs: WORKER_ATTEMPT_TIMEOUT_MS + 5000 },
    'sends half its answer, then nothing': { fault: 'stall-body' },
  };
  for (const [what, fault] of Object.entries(slowFaults)) {
    test(`create at a store that ${what} gets 503 in bounded time`, async (t) => {
      proxy.inject({ action: 'create', times: Infinity, ...fault });

      const { result: response, ms } = await timed(() => startUpload(PART_SIZE + 1));

      assertError(response, 503, 'storage_unavailable');
      assert.match(response.body.error.message, /could not be reached/);
      t.diagnostic(`create, store ${what}: 503 after ${proxy.tries('create')} tries, ${ms} ms`);
      assert.ok(ms < WORKER_ATTEMPT_TIMEOUT_MS + QUICK_FAILURE_MS, `took ${ms} ms`);
    });

    test(`listing parts at a store that ${what} gets 503 in bounded time`, async (t) => {
      const upload = await started(PART_SIZE + 1);
      proxy.clear();
      proxy.inject({ action: 'list-parts', times: Infinity, ...fault });

      const { result: response, ms } = await timed(() => listParts(upload.token));

      assertError(response, 503, 'storage_unavailable');
      t.diagnostic(`list parts, store ${what}: 503 after ${proxy.tries('list-parts')} tries, `
        + `${ms} ms`);
      assert.ok(ms < WORKER_ATTEMPT_TIMEOUT_MS + QUICK_FAILURE_MS, `took ${ms} ms`);
      proxy.clear();
      assert.equal((await abort(upload.token)).status, 204);
    });
  }
});

describe('parts sent by the client through a faulty store', () => {
  test('parts hit by 503, 500, a dropped connection and a cut body are sent again; the '
    + 'object is the source', async (t) => {
    const body = threePartBody();
    const upload = await started(body.length);
    proxy.clear();
    proxy.inject({ action: 'part', fault: 'error', status: 503, code: 'SlowDown' });
    proxy.inject({ action: 'part', fault: 'error', status: 500, code: 'InternalError' });
    proxy.inject({ action: 'part', fault: 'drop' });
    proxy.inject({ action: 'part', fault: 'cut-body' });

    const parts = await sendAllParts(upload, body);
    const done = await complete(upload.token, parts);

    assert.equal(done.status, 200, redacted(done.text));
    t.diagnostic(`part PUTs: ${proxy.tries('part')} for 3 parts`);
    assert.equal(proxy.tries('part'), 3 + 4, 'each broken PUT was sent once more');
    await assertStoredWhole(upload.key, body);
  });
});

describe('the Worker completing at a faulty store', () => {
  test('complete after one 503 SlowDown is retried by the Worker and gives the object',
    async () => {
      const body = threePartBody();
      const { upload, parts } = await uploadedParts(body);
      proxy.inject({ action: 'complete', fault: 'error', status: 503, code: 'SlowDown' });

      const done = await complete(upload.token, parts);

      assert.equal(done.status, 200, redacted(done.text));
      assert.equal(proxy.tries('complete'), 2);
      await assertStoredWhole(upload.key, body);
    });

  test('complete that keeps failing gets 503 and leaves no object; the client\'s retry '
    + 'completes it', async (t) => {
    const body = threePartBody();
    const { upload, parts } = await uploadedParts(body);
    proxy.inject({ action: 'complete', fault: 'error', status: 503, code: 'SlowDown',
      times: Infinity });

    const failed = await complete(upload.token, parts);

    assertError(failed, 503, 'storage_unavailable');
    assert.equal(proxy.tries('complete'), WORKER_ATTEMPTS);
    await assertNoObject(upload.key);
    t.diagnostic(`complete against SlowDown: 503 "${failed.body.error.message}"`);

    proxy.clear();
    const done = await complete(upload.token, parts);
    assert.equal(done.status, 200, redacted(done.text));
    await assertStoredWhole(upload.key, body);
  });

  // SeaweedFS answers a second CompleteMultipartUpload of a completed upload with 200 and
  // the same object again; R2 and S3 may answer 404 NoSuchUpload instead, and then the
  // Worker looks at the object (HEAD) and accepts it when its ETag is the one these parts
  // make. Both ways are tried here: the proxy plays the forgetful store.
  const retriedCompletes = {
    'the store completes it again': [],
    'the store says NoSuchUpload': [
      { action: 'complete', fault: 'error', status: 404, code: 'NoSuchUpload' },
    ],
  };
  for (const [what, thenFaults] of Object.entries(retriedCompletes)) {
    test(`complete whose answer is lost after the store did it, and ${what}: the Worker's `
      + 'retry answers 200 with the object', async (t) => {
      const body = threePartBody();
      const { upload, parts } = await uploadedParts(body);
      proxy.inject({ action: 'complete', fault: 'drop-after' });
      for (const fault of thenFaults) proxy.inject(fault);

      const done = await complete(upload.token, parts);

      assert.equal(done.status, 200, redacted(done.text));
      t.diagnostic(`requests: ${describeSeen()}`);
      const expected = ['complete', 'complete', ...(thenFaults.length ? ['head'] : [])];
      assert.deepEqual(proxy.seen().map((r) => r.action), expected);
      const storedEtag = await assertStoredWhole(upload.key, body);
      assert.deepEqual({ etag: done.body.etag, size: done.body.size },
        { etag: storedEtag, size: body.length });
    });
  }

  test('complete whose answer is lost on every try gets 503; the client\'s retries answer '
    + 'the same object', async (t) => {
    const body = threePartBody();
    const { upload, parts } = await uploadedParts(body);
    proxy.inject({ action: 'complete', fault: 'drop-after', times: Infinity });

    const failed = await complete(upload.token, parts);

    assertError(failed, 503, 'storage_unavailable');
    t.diagnostic(`requests: ${describeSeen()}`);
    const storedEtag = await assertStoredWhole(upload.key, body); // the store did complete

    proxy.clear();
    const again = await complete(upload.token, parts);
    proxy.inject({ action: 'complete', fault: 'error', status: 404, code: 'NoSuchUpload' });
    const viaHead = await complete(upload.token, parts);
    assert.equal(again.status, 200, redacted(again.text));
    assert.equal(viaHead.status, 200, redacted(viaHead.text));
    assert.deepEqual(viaHead.body, again.body, 'every retry answers the same');
    assert.deepEqual({ etag: again.body.etag, size: again.body.size },
      { etag: storedEtag, size: body.length });
  });

  test('complete whose upload the store lost gets 409 when the object there is another one',
    async () => {
      const body = threePartBody();
      const { upload, parts } = await uploadedParts(body);
      proxy.inject({ action: 'complete', fault: 'error', status: 404, code: 'NoSuchUpload' });

      const refused = await complete(upload.token, parts);

      // No object at the key: the upload was aborted, as far as the Worker can tell.
      assertError(refused, 409, 'conflict');
      assert.deepEqual(proxy.seen().map((r) => r.action), ['complete', 'head']);
      assert.equal((await abort(upload.token)).status, 204);
    });

  test('complete answered 200 with an error body (as S3 may) gets 502, no object; retried, '
    + 'it completes', async (t) => {
    const body = threePartBody();
    const { upload, parts } = await uploadedParts(body);
    proxy.inject({ action: 'complete', fault: 'error-200', code: 'InternalError' });

    const failed = await complete(upload.token, parts);

    assertError(failed, 502, 'storage_error');
    assert.match(failed.body.error.message, /InternalError/);
    t.diagnostic(`200 with <Error>: ${failed.status} "${failed.body.error.message}"`);
    await assertNoObject(upload.key);

    const done = await complete(upload.token, parts);
    assert.equal(done.status, 200, redacted(done.text));
    await assertStoredWhole(upload.key, body);
  });

  test('listing parts after one 500 InternalError is retried by the Worker', async () => {
    const body = threePartBody();
    const { upload, parts } = await uploadedParts(body);
    proxy.inject({ action: 'list-parts', fault: 'error', status: 500, code: 'InternalError' });

    const listing = await listParts(upload.token);

    assert.equal(listing.status, 200, redacted(listing.text));
    assert.equal(proxy.tries('list-parts'), 2);
    assert.deepEqual(listing.body.parts.map((p) => p.etag), parts.map((p) => p.etag));
    assert.equal((await abort(upload.token)).status, 204);
  });
});

describe('the Worker aborting at a faulty store', () => {
  /** After abort: the Worker says the upload is gone, the store has no upload, no object. */
  async function assertLeftNothing(upload) {
    assertError(await listParts(upload.token), 409, 'conflict');
    assert.deepEqual(await pendingUploads(upload.key), [], 'the store has no such upload');
    await assertNoObject(upload.key);
  }

  const onceFaults = {
    'a dropped connection': { fault: 'drop' },
    'a lost answer': { fault: 'drop-after' },
    'a 500 InternalError': { fault: 'error', status: 500, code: 'InternalError' },
  };
  for (const [what, fault] of Object.entries(onceFaults)) {
    test(`abort after ${what} is retried: 204, and no part, upload or object is left`,
      async () => {
        const { upload } = await uploadedParts(threePartBody());
        proxy.inject({ action: 'abort', ...fault });

        const aborted = await abort(upload.token);

        assert.equal(aborted.status, 204, redacted(aborted.text));
        assert.equal(proxy.tries('abort'), 2);
        await assertLeftNothing(upload);
      });
  }

  test('abort against a store that keeps failing gets 503 and leaves the upload as it was; '
    + 'retried later, it aborts', async () => {
    const { upload, parts } = await uploadedParts(threePartBody());
    proxy.inject({ action: 'abort', fault: 'error', status: 503, code: 'ServiceUnavailable',
      times: Infinity });

    const failed = await abort(upload.token);

    assertError(failed, 503, 'storage_unavailable');
    proxy.clear();
    const listing = await listParts(upload.token);
    assert.equal(listing.status, 200, 'the upload is still there, and says so');
    assert.equal(listing.body.parts.length, parts.length);

    assert.equal((await abort(upload.token)).status, 204);
    await assertLeftNothing(upload);
  });
});

describe('a single presigned PUT through a faulty store', () => {
  // The Worker signs a single PUT without calling the store; only the client meets the
  // faults, and the store's own checks keep a broken body out.
  async function presignedPut(body) {
    const upload = await started(body.length, false);
    assert.equal(upload.type, 'single');
    assert.ok(upload.url.startsWith(proxy.endpoint), 'the URL points at the proxy');
    proxy.clear();
    return upload;
  }

  test('a PUT refused with 503 SlowDown is sent again and stores the source', async () => {
    const body = randomBytes(3 * MiB);
    const upload = await presignedPut(body);
    proxy.inject({ action: 'put', fault: 'error', status: 503, code: 'SlowDown' });

    const sent = await putWithRetries(upload.url, upload.headers, body);

    assert.equal(sent.status, 200, sent.text);
    assert.equal(sent.attempt, 2);
    await assertStoredWhole(upload.key, body);
  });

  for (const [what, fault] of Object.entries({
    'dropped before the store saw it': { fault: 'drop' },
    'cut off halfway through its body': { fault: 'cut-body' },
  })) {
    test(`a PUT ${what} leaves no object; sent again, it stores the source`, async () => {
      const body = randomBytes(3 * MiB);
      const upload = await presignedPut(body);
      proxy.inject({ action: 'put', ...fault });

      await assert.rejects(fetch(upload.url, { method: 'PUT', headers: upload.headers, body }));
      await sleep(200); // let the store give up on the cut body
      await assertNoObject(upload.key);

      const sent = await putWithRetries(upload.url, upload.headers, body);
      assert.equal(sent.status, 200, sent.text);
      await assertStoredWhole(upload.key, body);
    });
  }

  test('a PUT whose answer is lost stored the whole source; sent again, the store answers 412',
    async () => {
      const body = randomBytes(3 * MiB);
      const upload = await presignedPut(body);
      proxy.inject({ action: 'put', fault: 'drop-after' });

      const sent = await putWithRetries(upload.url, upload.headers, body);

      // The profile does not overwrite (If-None-Match: *), so the retry is refused though
      // the first try landed. A client that sees 412 after a lost answer has its file.
      assert.equal(sent.status, 412, sent.text);
      assert.equal(sent.attempt, 2);
      await assertStoredWhole(upload.key, body);
    });
});

function escapeXml(text) {
  return text.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
