// End to end: multipart uploads through the Worker, against two stores that check SigV4
// themselves: the local R2 store of `wrangler dev` (profile `default`) and SeaweedFS
// (profile `seaweed`). Each describe() below runs once per store. Parts go straight to
// the store with the URLs the Worker signs; what landed is read back with our own S3
// client (aws4fetch), never through the Worker.
//
// Run: node --test --test-concurrency=1 tests/e2e/multipart.test.mjs
//      (bash scripts/setup --seaweedfs installs SeaweedFS first)

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  API_KEY,
  SEAWEED_PROFILE,
  STORES,
  callApi,
  createUpload,
  jwtClaims,
  randomBytes,
  sha256,
  signJwt,
  storeClient,
  useSeaweedFS,
  useWorker,
} from './harness.mjs';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PART_SIZE = 8 * MiB; // the default profile's preferred part size
const MAX_PARTS = 10_000;
const IN_FLIGHT = 4;
const SMALL_MAX_SIZE = 10 * MiB;
const STORE_DOWN_LIMIT_MS = 5000;
const REQUEST_TIMEOUT_MS = 60_000;
const KiB = 1024;
const MAX_COMPLETE_BODY_BYTES = 11_528_192; // api::MAX_COMPLETE_BODY_BYTES
const LONGEST_ETAG = `"${'e'.repeat(1024)}"`; // the longest the Worker accepts

const seaweed = useSeaweedFS();
const worker = useWorker({ seaweed, profiles: extraProfiles() });

/**
 * Per store: `<id>-large` allows 10,000 parts of 8 MiB (the default allows 5 GiB), and
 * `<id>-small` allows 10 MiB, for the /s3/ upload whose parts outgrow it.
 */
function extraProfiles() {
  const profiles = {};
  for (const store of STORES) {
    profiles[`${store.id}-large`] = { bucket: store.bucketSetting, maxSize: 100 * GiB };
    profiles[`${store.id}-small`] = { bucket: store.bucketSetting, maxSize: SMALL_MAX_SIZE };
  }
  return profiles;
}

// ---------------------------------------------------------------------------------------
// A client of the /v1/ multipart routes

/** POST /v1/uploads with `multipart: true`, asserting 201 and a multipart answer. */
async function startMultipart(profile, size, credential = API_KEY, filename = 'big.bin') {
  const request = {
    profile,
    filename,
    contentType: 'application/octet-stream',
    size,
    multipart: true,
  };
  const response = await createUpload(worker, request, credential);
  assert.equal(response.status, 201, `POST /v1/uploads: ${redacted(response.text)}`);
  assert.equal(response.body.type, 'multipart');
  return response.body;
}

function signParts(token, partNumbers, credential = API_KEY) {
  return callApi(worker, '/v1/multipart/parts', { credential, json: { token, partNumbers } });
}

function listParts(token, credential = API_KEY) {
  const query = new URLSearchParams({ token });
  return callApi(worker, `/v1/multipart/parts?${query}`, { method: 'GET', credential });
}

function completeUpload(token, parts, credential = API_KEY) {
  return callApi(worker, '/v1/multipart/complete', { credential, json: { token, parts } });
}

function abortUpload(token, credential = API_KEY) {
  return callApi(worker, '/v1/multipart/abort', { credential, json: { token } });
}

/** Signs `partNumbers` in one request, asserting 200; the signed parts by number. */
async function signedParts(token, partNumbers) {
  const response = await signParts(token, partNumbers);
  assert.equal(response.status, 200, `POST /v1/multipart/parts: ${redacted(response.text)}`);
  return new Map(response.body.parts.map((part) => [part.partNumber, part]));
}

/** The bytes of part `number` of a plan with parts of `partSize`. */
function partOf(body, partSize, number) {
  return body.subarray((number - 1) * partSize, Math.min(number * partSize, body.length));
}

function putToStore(url, headers, body) {
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  return fetch(url, { method: 'PUT', headers, body, signal });
}

/** PUTs one signed part, asserting 200; its ETag as the store gave it. */
async function putPart(part, bytes) {
  const response = await putToStore(part.url, part.headers, bytes);
  const text = await response.text();
  assert.equal(response.status, 200, `PUT part ${part.partNumber}: ${response.status} ${text}`);
  const etag = response.headers.get('etag');
  assert.ok(etag, `the store gave part ${part.partNumber} no ETag`);
  return etag;
}

/**
 * Sends the given parts of `body`, `inFlight` at a time, with URLs signed in one batch.
 * Returns the parts for complete, in part order, and the most requests seen in flight.
 */
async function sendParts(upload, body, partNumbers, inFlight = IN_FLIGHT) {
  const signed = await signedParts(upload.token, partNumbers);
  const queue = [...partNumbers];
  const done = [];
  let active = 0;
  let mostActive = 0;
  const lane = async () => {
    for (let number = queue.shift(); number !== undefined; number = queue.shift()) {
      active += 1;
      mostActive = Math.max(mostActive, active);
      try {
        const etag = await putPart(signed.get(number), partOf(body, upload.partSize, number));
        done.push({ partNumber: number, etag });
      } finally {
        active -= 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  done.sort((a, b) => a.partNumber - b.partNumber);
  return { parts: done, mostActive };
}

/** Completes, asserting 200; the answer. */
async function completed(token, parts) {
  const response = await completeUpload(token, parts);
  assert.equal(response.status, 200, `POST /v1/multipart/complete: ${redacted(response.text)}`);
  return response.body;
}

function partNumbersUpTo(count) {
  return Array.from({ length: count }, (_, i) => i + 1);
}

// ---------------------------------------------------------------------------------------
// Checks

function assertError(response, status, code, field) {
  const answer = `${response.status} ${redacted(response.text)}`;
  assert.equal(response.status, status, answer);
  assert.equal(response.body?.error?.code, code, answer);
  if (field !== undefined) assert.equal(response.body.error.field, field, answer);
}

/** Both stores answer a part that breaks its signature with 403 SignatureDoesNotMatch. */
function assertRefusedByStore(response, text, what) {
  assert.equal(response.status, 403, `${what}: the store answered ${response.status} ${text}`);
  assert.match(text, /<Code>SignatureDoesNotMatch<\/Code>/, what);
}

function clientOf(store) {
  return storeClient(store, { worker, seaweed });
}

async function readBack(store, key) {
  const response = await clientOf(store).getObject(key);
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, bytes };
}

async function assertNoObject(store, key) {
  const response = await clientOf(store).headObject(key);
  assert.equal(response.status, 404, `expected no object at ${key}, the store has one`);
}

async function assertStoredWhole(store, key, body) {
  const stored = await readBack(store, key);
  assert.equal(stored.status, 200, `GET ${key} at the store answered ${stored.status}`);
  assert.equal(stored.bytes.length, body.length);
  assert.equal(sha256(stored.bytes), sha256(body), 'the stored bytes differ from the source');
}

/** What kind of ETag a store gives parts, for the log. */
function etagShape(etag) {
  const bare = etag.replaceAll('"', '');
  return /^[0-9a-f]{32}$/.test(bare) ? 'are MD5 hex' : `are opaque (${bare.length} characters)`;
}

/** An answer fit for a failure message: signatures and tokens left out. */
function redacted(text) {
  return text
    .replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1<redacted>')
    .replace(/("token":")[^"]+/g, '$1<redacted>');
}

/** The token with one character of its signed part changed. */
function editedToken(token) {
  const at = Math.floor(token.indexOf('.') / 2);
  const changed = token[at] === 'A' ? 'B' : 'A';
  return token.slice(0, at) + changed + token.slice(at + 1);
}

/** A presigned URL with the last character of its signature changed. */
function withTamperedSignature(url) {
  const parsed = new URL(url);
  const signature = parsed.searchParams.get('X-Amz-Signature');
  const flipped = signature.at(-1) === '0' ? '1' : '0';
  parsed.searchParams.set('X-Amz-Signature', signature.slice(0, -1) + flipped);
  return parsed.href;
}

// ---------------------------------------------------------------------------------------

for (const store of STORES) {
  describe(`multipart uploads to ${store.name} (profile ${store.profile})`, () => {
    test('a 64 MiB file sent in parts, four at a time, completes byte for byte', async (t) => {
      const body = randomBytes(64 * MiB);
      const upload = await startMultipart(store.profile, body.length);
      assert.equal(upload.bucket, store.bucket);
      assert.deepEqual([upload.partSize, upload.partCount], [PART_SIZE, 8]);

      const { parts, mostActive } = await sendParts(upload, body, partNumbersUpTo(8));
      const done = await completed(upload.token, parts);

      assert.equal(mostActive, IN_FLIGHT, 'parts went up four at a time');
      assert.deepEqual(
        { bucket: done.bucket, key: done.key, size: done.size },
        { bucket: store.bucket, key: upload.key, size: body.length },
      );
      const partEtags = etagShape(parts[0].etag);
      t.diagnostic(`${store.name}: object ETag ${done.etag}, part ETags ${partEtags}`);
      await assertStoredWhole(store, upload.key, body);
    });

    const cannotList = !store.listsParts && 'this store cannot list the parts of an upload';

    test('a fresh client with only the token resumes the upload and completes it', {
      skip: cannotList,
    }, async () => {
      const body = randomBytes(3 * PART_SIZE + 123);
      const upload = await startMultipart(store.profile, body.length);
      const firstClient = await sendParts(upload, body, [1, 3]);

      const resumed = await resumeWithToken(upload.token, body);

      assert.deepEqual(resumed.found, firstClient.parts, 'the store lists what was sent');
      assert.deepEqual(resumed.sent, [2, 4], 'only the missing parts were sent again');
      await assertStoredWhole(store, upload.key, body);
    });

    // These send the small last part: refusing an 8 MiB body, the local R2 store closes
    // the connection before reading it, so the client sees a network error, not a 403.
    test('the store refuses a part of another size than its URL signs', async () => {
      const upload = await startMultipart(store.profile, PART_SIZE + 1000);
      const part = (await signedParts(upload.token, [2])).get(2);

      const short = randomBytes(999);
      const headers = { ...part.headers, 'content-length': String(short.length) };
      const response = await putToStore(part.url, headers, short);

      assertRefusedByStore(response, await response.text(), 'a part 1 byte short');
      await assertNoPartsStored(store, upload.token);
      await abortUpload(upload.token);
    });

    test('the store refuses a part URL whose partNumber was changed', async () => {
      const body = randomBytes(PART_SIZE + 1000);
      const upload = await startMultipart(store.profile, body.length);
      const part = (await signedParts(upload.token, [2])).get(2);

      const url = new URL(part.url);
      url.searchParams.set('partNumber', '1');
      const response = await putToStore(url.href, part.headers, partOf(body, PART_SIZE, 2));

      assertRefusedByStore(response, await response.text(), 'part 2\'s URL used for part 1');
      await assertNoPartsStored(store, upload.token);
      await abortUpload(upload.token);
    });

    test('the store refuses a part URL whose signature was changed', async () => {
      const body = randomBytes(PART_SIZE + 1000);
      const upload = await startMultipart(store.profile, body.length);
      const part = (await signedParts(upload.token, [2])).get(2);

      const url = withTamperedSignature(part.url);
      const response = await putToStore(url, part.headers, partOf(body, PART_SIZE, 2));

      assertRefusedByStore(response, await response.text(), 'a tampered part URL');
      await assertNoPartsStored(store, upload.token);
      await abortUpload(upload.token);
    });

    describe('complete with a wrong part list', () => {
      // One upload with both parts in the store; each refused list must leave it open.
      const state = {};
      before(async () => {
        state.body = randomBytes(PART_SIZE + 1000);
        state.upload = await startMultipart(store.profile, state.body.length);
        state.parts = (await sendParts(state.upload, state.body, [1, 2])).parts;
      });

      const wrongLists = {
        'a wrong ETag': (parts) => [
          { ...parts[0], etag: '"0123456789abcdef0123456789abcdef"' },
          parts[1],
        ],
        'a missing part': (parts) => [parts[0]],
        'a duplicate part': (parts) => [parts[0], parts[0], parts[1]],
        'an empty list': () => [],
      };
      for (const [what, wrongList] of Object.entries(wrongLists)) {
        test(`a list with ${what} gets 400 and no object appears`, async () => {
          const response = await completeUpload(state.upload.token, wrongList(state.parts));

          assertError(response, 400, 'invalid_request');
          assert.equal(response.body.error.field, 'parts');
          await assertNoObject(store, state.upload.key);
        });
      }

      test('after the refused lists, the right list still completes', async () => {
        await completed(state.upload.token, state.parts);

        await assertStoredWhole(store, state.upload.key, state.body);
      });
    });

    test('abort answers 204, leaves no object, and later calls get 409', async () => {
      const body = randomBytes(PART_SIZE + 1);
      const upload = await startMultipart(store.profile, body.length);
      const { parts } = await sendParts(upload, body, [1, 2]);

      const aborted = await abortUpload(upload.token);

      assert.equal(aborted.status, 204, redacted(aborted.text));
      await assertNoObject(store, upload.key);
      assertError(await completeUpload(upload.token, parts), 409, 'conflict');
      if (store.listsParts) {
        assertError(await signParts(upload.token, [1]), 409, 'conflict');
        assertError(await listParts(upload.token), 409, 'conflict');
      } else {
        // The Worker learns that an upload is gone by listing its parts; without that it
        // signs, and the store refuses the part.
        const part = (await signedParts(upload.token, [1])).get(1);
        const response = await putToStore(part.url, part.headers, partOf(body, PART_SIZE, 1));
        const text = await response.text();
        assert.ok(response.status >= 400 && response.status < 500, `${response.status} ${text}`);
      }
    });

    test('listing parts where the store cannot gets 502 saying so', {
      skip: store.listsParts && 'this store lists parts',
    }, async () => {
      const upload = await startMultipart(store.profile, PART_SIZE + 1);

      const response = await listParts(upload.token);

      assertError(response, 502, 'storage_error');
      assert.match(response.body.error.message, /cannot list the parts/);
      await abortUpload(upload.token);
    });

    test('completing twice with the same list answers the same both times', async () => {
      const body = randomBytes(PART_SIZE + 1);
      const upload = await startMultipart(store.profile, body.length);
      const { parts } = await sendParts(upload, body, [1, 2]);

      const first = await completeUpload(upload.token, parts);
      const second = await completeUpload(upload.token, parts);

      assert.equal(first.status, 200, redacted(first.text));
      assert.equal(second.status, 200, `second complete: ${redacted(second.text)}`);
      assert.deepEqual(second.body, first.body);
      await assertStoredWhole(store, upload.key, body);
    });

    test('a token used by another subject gets 403 on every route', async () => {
      const upload = await startMultipart(store.profile, PART_SIZE + 1);
      const stranger = await signJwt(jwtClaims('someone-else'));

      assertError(await signParts(upload.token, [1], stranger), 403, 'forbidden');
      assertError(await listParts(upload.token, stranger), 403, 'forbidden');
      assertError(await completeUpload(upload.token, [], stranger), 403, 'forbidden');
      assertError(await abortUpload(upload.token, stranger), 403, 'forbidden');
      assert.equal((await signParts(upload.token, [1])).status, 200, 'its owner still may');
      await abortUpload(upload.token);
    });

    // Not 401: the caller's credential is good, and clients renew it on a 401.
    test('a token edited by one character gets 400 naming token', async () => {
      const upload = await startMultipart(store.profile, PART_SIZE + 1);
      const edited = editedToken(upload.token);

      assertError(await signParts(edited, [1]), 400, 'invalid_request', 'token');
      assertError(await listParts(edited), 400, 'invalid_request', 'token');
      await abortUpload(upload.token);
    });

    test('10,000 part URLs are signed in one request', async (t) => {
      const upload = await startMultipart(`${store.id}-large`, MAX_PARTS * PART_SIZE);
      assert.deepEqual([upload.partSize, upload.partCount], [PART_SIZE, MAX_PARTS]);

      const started = performance.now();
      const response = await signParts(upload.token, partNumbersUpTo(MAX_PARTS));
      const elapsed = Math.round(performance.now() - started);
      t.diagnostic(`${store.name}: batch of ${MAX_PARTS} part URLs: ${elapsed} ms`);

      assert.equal(response.status, 200, redacted(response.text));
      const { parts } = response.body;
      assert.deepEqual(parts.map((p) => p.partNumber), partNumbersUpTo(MAX_PARTS));
      for (const part of parts) {
        assert.equal(new URL(part.url).searchParams.get('partNumber'), String(part.partNumber));
        assert.equal(part.headers['content-length'], String(PART_SIZE));
      }
      assert.equal(new Set(parts.map((p) => p.url)).size, MAX_PARTS, 'every URL differs');
      await putPart(parts.at(-1), randomBytes(PART_SIZE)); // the last URL works at the store
      assert.equal((await abortUpload(upload.token)).status, 204);
    });
  });

  describe(`Uppy's /s3/ routes on ${store.name}`, () => {
    test('create, sign a part and a batch, PUT, list where the store can, complete', async () => {
      const body = randomBytes(2 * 6 * MiB + 1000); // Uppy cuts equal parts; R2 needs that
      const uppyPartSize = 6 * MiB;
      const upload = await uppyCreate({
        filename: 'holiday clip.mp4',
        type: 'video/mp4',
        metadata: { size: body.length, profile: store.profile },
      });
      const one = await uppyGet(`${uploadPath(upload)}/1?${keyQuery(upload)}`);
      const batch = await uppyGet(batchPath(upload, [2, 3]));
      assert.deepEqual(Object.keys(batch.presignedUrls), ['2', '3']);
      const urls = { 1: one.url, ...batch.presignedUrls };

      const sent = [];
      for (const number of [1, 2, 3]) {
        const etag = await putPart({ partNumber: number, url: urls[number], headers: {} },
          partOf(body, uppyPartSize, number));
        sent.push({ PartNumber: number, ETag: etag });
      }
      if (store.listsParts) {
        const listed = await uppyGet(`${uploadPath(upload)}?${keyQuery(upload)}`);
        const sizes = [uppyPartSize, uppyPartSize, 1000];
        assert.deepEqual(listed, sent.map((part, i) => ({ ...part, Size: sizes[i] })));
      }
      const done = await uppyComplete(upload, sent);

      assert.equal(decodeURIComponent(new URL(done.location).pathname),
        `${new URL(clientOf(store).bucketUrl).pathname}/${upload.key}`);
      await assertStoredWhole(store, upload.key, body);
    });

    test('GET /s3/params signs a single PUT that uploads a file', async () => {
      const body = randomBytes(1000);
      const query = new URLSearchParams({
        filename: 'note.txt',
        type: 'text/plain',
        'metadata[size]': String(body.length),
        'metadata[profile]': store.profile,
      });

      const params = await uppyGet(`/s3/params?${query}`);
      const response = await putToStore(params.url, params.headers, body);

      assert.equal(params.method, 'PUT');
      assert.equal(params.fields.key, keyOfStoreUrl(store, params.url), 'fields.key is the URL\'s');
      assert.equal(response.status, 200, await response.text());
      await assertStoredWhole(store, params.fields.key, body);
    });

    test('an upload whose parts outgrow the profile is aborted at complete with 413', async () => {
      const upload = await uppyCreate({
        filename: 'liar.bin',
        type: 'application/octet-stream',
        metadata: { size: 1000, profile: `${store.id}-small` }, // declares less than it sends
      });
      const batch = await uppyGet(batchPath(upload, [1, 2]));
      const sent = [];
      for (const number of [1, 2]) {
        const url = batch.presignedUrls[number];
        const etag = await putPart({ partNumber: number, url, headers: {} }, randomBytes(6 * MiB));
        sent.push({ PartNumber: number, ETag: etag });
      }

      const response = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
        { credential: API_KEY, json: { parts: sent } });

      assertError(response, 413, 'too_large');
      await assertNoObject(store, upload.key);
      if (store.listsParts) {
        const list = await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`,
          { method: 'GET', credential: API_KEY });
        assertError(list, 409, 'conflict'); // aborted: the parts are gone too
      }
    });

    const sizeLies = [
      { declared: 6_000_000, status: 413, code: 'too_large', words: 'more' },
      { declared: 20_000_000, status: 400, code: 'invalid_request', words: 'fewer' },
    ];
    for (const { declared, status, code, words } of sizeLies) {
      const name = `parts of ${words} bytes than declared are refused at complete with ${status}`;
      test(`${name}, naming both sizes`, async () => {
        const upload = await uppyCreate({
          filename: 'liar.bin',
          type: 'application/octet-stream',
          metadata: { size: declared, profile: store.profile }, // the profile allows both
        });
        const batch = await uppyGet(batchPath(upload, [1, 2]));
        const sent = [];
        for (const number of [1, 2]) {
          const url = batch.presignedUrls[number];
          const part = { partNumber: number, url, headers: {} };
          const etag = await putPart(part, randomBytes(6 * MiB));
          sent.push({ PartNumber: number, ETag: etag });
        }

        const response = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
          { credential: API_KEY, json: { parts: sent } });

        assertError(response, status, code);
        const { message, field } = response.body.error;
        assert.equal(field, 'parts');
        const sizes = `${12 * MiB} bytes, ${words} than the ${declared} bytes`;
        assert.ok(message.includes(sizes), message);
        await assertNoObject(store, upload.key);
        if (store.listsParts) {
          const list = await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`,
            { method: 'GET', credential: API_KEY });
          if (words === 'more') {
            assertError(list, 409, 'conflict'); // aborted: the parts are gone too
          } else {
            // Fewer bytes may be a part left out of the list: the upload stays open.
            assert.equal(list.status, 200, list.text);
            assert.deepEqual(list.body.map((p) => p.PartNumber), [1, 2]);
            await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`,
              { method: 'DELETE', credential: API_KEY });
          }
        }
      });
    }

    test('a part list whose ETag is not the one the store holds is refused before completing', {
      skip: !store.listsParts && 'the local R2 store cannot list parts, so the store checks the ETags itself',
    }, async () => {
      const upload = await uppyCreate({
        filename: 'swapped.bin',
        type: 'application/octet-stream',
        metadata: { size: 6 * MiB, profile: store.profile },
      });
      const batch = await uppyGet(batchPath(upload, [1]));
      const etag = await putPart({ partNumber: 1, url: batch.presignedUrls[1], headers: {} }, randomBytes(6 * MiB));
      const other = `"${'0'.repeat(32)}"`;

      const response = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
        { credential: API_KEY, json: { parts: [{ PartNumber: 1, ETag: other }] } });
      const retried = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
        { credential: API_KEY, json: { parts: [{ PartNumber: 1, ETag: etag }] } });

      assertError(response, 400, 'invalid_request');
      assert.match(response.body.error.message, /part 1's ETag/);
      assert.equal(retried.status, 200, `the right list still completes: ${retried.text}`);
    });

    test('an unknown /s3/ path (404) and a wrong method (405) also carry the top-level message Uppy shows', async () => {
      const upload = await uppyCreate({ filename: 'x.bin', type: 'application/octet-stream', metadata: { size: 10, profile: store.profile } });
      const unknown = await callApi(worker, `${uploadPath(upload)}/1/extra`, { method: 'GET', credential: API_KEY });
      const wrongMethod = await callApi(worker, `${uploadPath(upload)}/1?${keyQuery(upload)}`, { method: 'PUT', credential: API_KEY });

      for (const [response, status, code] of [[unknown, 404, 'not_found'], [wrongMethod, 405, 'method_not_allowed']]) {
        assertError(response, status, code);
        assert.equal(response.body.message, response.body.error.message);
      }
      assert.equal(wrongMethod.headers.get('allow'), 'GET');
      assert.doesNotMatch(wrongMethod.body.message, /:uploadId/, 'the path as sent, not a pattern');
      await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`, { method: 'DELETE', credential: API_KEY });
    });

    test('part numbers that are not plain digits from 1 to 10000 get 400 naming partNumber or partNumbers', async () => {
      const upload = await uppyCreate({ filename: 'x.bin', type: 'application/octet-stream', metadata: { size: 10, profile: store.profile } });
      for (const number of ['0', '10001', 'abc', '99999999999', '+1', '01']) {
        const response = await callApi(worker, `${uploadPath(upload)}/${number}?${keyQuery(upload)}`, { method: 'GET', credential: API_KEY });
        assertError(response, 400, 'invalid_request', 'partNumber');
      }
      for (const list of ['1,,2', '+1', '01', '0', '10001', '1, 2', '']) {
        const response = await callApi(worker, `${uploadPath(upload)}/batch?${keyQuery(upload)}&partNumbers=${encodeURIComponent(list)}`,
          { method: 'GET', credential: API_KEY });
        assertError(response, 400, 'invalid_request', 'partNumbers');
      }
      const missing = await callApi(worker, `${uploadPath(upload)}/batch?${keyQuery(upload)}`, { method: 'GET', credential: API_KEY });
      assertError(missing, 400, 'invalid_request', 'partNumbers');
      assert.match(missing.body.error.message, /missing/);
      await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`, { method: 'DELETE', credential: API_KEY });
    });

    test('create with a size of 0 or a profile that is not a string gets 400 naming the field', async () => {
      const create = (metadata) => callApi(worker, '/s3/multipart', {
        credential: API_KEY,
        json: { filename: 'x.bin', type: 'application/octet-stream', metadata },
      });

      assertError(await create({ size: 0, profile: store.profile }), 400, 'invalid_request', 'metadata.size');
      assertError(await create({ size: 10, profile: 7 }), 400, 'invalid_request', 'metadata.profile');
    });

    test('create and params without the size in metadata get 400', async () => {
      const create = await callApi(worker, '/s3/multipart', {
        credential: API_KEY,
        json: { filename: 'x.bin', type: 'application/octet-stream', metadata: {} },
      });
      const params = await callApi(worker, '/s3/params?filename=x.txt&type=text%2Fplain',
        { method: 'GET', credential: API_KEY });

      assertError(create, 400, 'invalid_request');
      assertError(params, 400, 'invalid_request');
    });
  });
}

// A real completion with a body over 64 KiB needs long part ETags: SeaweedFS gives 34
// characters, so that takes over 1,300 parts of at least 5 MiB. These tests send lists of
// 10,000 parts with the longest ETags the Worker accepts instead, and check that the
// Worker reads them and judges them on their content.
describe('complete bodies over 64 KiB', () => {
  const [store] = STORES;
  const longList = (name, count) => partNumbersUpTo(count)
    .map((n) => ({ [name.number]: n, [name.etag]: LONGEST_ETAG }));

  test('a /v1/ list of 10,000 parts with 1 KiB ETags is read and refused for part 3', async () => {
    const upload = await startMultipart(store.profile, PART_SIZE + 1); // two parts planned
    const parts = longList({ number: 'partNumber', etag: 'etag' }, MAX_PARTS);
    const bytes = JSON.stringify({ token: upload.token, parts }).length;
    assert.ok(bytes > 150 * 64 * KiB && bytes <= MAX_COMPLETE_BODY_BYTES, `${bytes} bytes`);

    const response = await completeUpload(upload.token, parts);

    assertError(response, 400, 'invalid_request');
    assert.equal(response.body.error.field, 'parts');
    assert.match(response.body.error.message, /part 3 is not part of this upload's plan/);
    await assertNoObject(store, upload.key);
    assert.equal((await abortUpload(upload.token)).status, 204);
  });

  test('an /s3/ list of 10,000 parts with 1 KiB ETags is refused for part 5000', async () => {
    const upload = await uppyCreate({
      filename: 'many.bin',
      type: 'application/octet-stream',
      metadata: { size: 50 * GiB, profile: `${store.id}-large` },
    });
    const parts = longList({ number: 'PartNumber', etag: 'ETag' }, MAX_PARTS);
    parts[4999].ETag = '"not an etag!"';

    const response = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
      { credential: API_KEY, json: { parts } });

    assertError(response, 400, 'invalid_request');
    assert.match(response.body.error.message, /part 5000 has a malformed ETag/);
    const aborted = await callApi(worker, `${uploadPath(upload)}?${keyQuery(upload)}`,
      { method: 'DELETE', credential: API_KEY });
    assert.equal(aborted.status, 200, aborted.text);
  });

  /** A complete body of the given length: a long list, padded with spaces. */
  function completeBodyOf(token, length) {
    const parts = longList({ number: 'partNumber', etag: 'etag' }, MAX_PARTS);
    const json = JSON.stringify({ token, parts });
    assert.ok(json.length <= length);
    return Buffer.from(json + ' '.repeat(length - json.length));
  }

  function postComplete(body) {
    return fetch(worker.url('/v1/multipart/complete'), {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  }

  async function assertTooLargeNamingTheLimit(response) {
    const text = await response.text();
    assert.equal(response.status, 413, text);
    const { error } = JSON.parse(text);
    assert.equal(error.code, 'too_large');
    assert.equal(error.message, `the request body is larger than ${MAX_COMPLETE_BODY_BYTES} bytes`);
  }

  test('a body of exactly the limit is read; one byte more gets 413 naming the limit', async () => {
    const upload = await startMultipart(store.profile, PART_SIZE + 1);

    const atLimit = await postComplete(completeBodyOf(upload.token, MAX_COMPLETE_BODY_BYTES));
    const atLimitText = await atLimit.text();
    assert.equal(atLimit.status, 400, atLimitText);
    assert.match(atLimitText, /part 3 is not part of this upload's plan/);

    await assertTooLargeNamingTheLimit(
      await postComplete(completeBodyOf(upload.token, MAX_COMPLETE_BODY_BYTES + 1)));
    await abortUpload(upload.token);
  });

  test('a body over the limit, streamed without Content-Length, gets 413 naming it', async () => {
    const upload = await startMultipart(store.profile, PART_SIZE + 1);
    const bytes = completeBodyOf(upload.token, MAX_COMPLETE_BODY_BYTES + 64 * KiB);
    const stream = new ReadableStream({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 64 * KiB) {
          controller.enqueue(bytes.subarray(at, at + 64 * KiB));
        }
        controller.close();
      },
    });

    await assertTooLargeNamingTheLimit(await postComplete(stream));
    await abortUpload(upload.token);
  });
});

describe('SeaweedFS stopped', () => {
  test('POST /v1/uploads for a multipart upload gets 503 quickly', async (t) => {
    await seaweed.stop();

    const started = performance.now();
    const response = await createUpload(worker, {
      profile: SEAWEED_PROFILE,
      filename: 'big.bin',
      contentType: 'application/octet-stream',
      size: 20 * MiB,
      multipart: true,
    });
    const elapsed = Math.round(performance.now() - started);
    t.diagnostic(`503 with SeaweedFS stopped: ${elapsed} ms`);

    assertError(response, 503, 'storage_unavailable');
    assert.ok(response.headers.get('retry-after'), 'a 503 says when to retry');
    assert.ok(elapsed < STORE_DOWN_LIMIT_MS, `took ${elapsed} ms`);
  });
});

// ---------------------------------------------------------------------------------------
// Helpers that need the tests above to read first

/**
 * A client that knows only the token and the file: asks the Worker what the store has,
 * sends the rest (their sizes come from the signed content-length), and completes.
 */
async function resumeWithToken(token, file) {
  const listing = await listParts(token);
  assert.equal(listing.status, 200, redacted(listing.text));
  const found = listing.body.parts.map(({ partNumber, etag }) => ({ partNumber, etag }));

  const partSize = Math.max(...listing.body.parts.map((p) => p.size));
  const lastNumber = Math.ceil(file.length / partSize);
  const have = new Set(found.map((p) => p.partNumber));
  const missing = partNumbersUpTo(lastNumber).filter((n) => !have.has(n));
  const signed = await signedParts(token, missing);
  const sent = [];
  for (const number of missing) {
    const part = signed.get(number);
    const start = (number - 1) * partSize;
    const bytes = file.subarray(start, start + Number(part.headers['content-length']));
    sent.push({ partNumber: number, etag: await putPart(part, bytes) });
  }
  const all = [...found, ...sent].sort((a, b) => a.partNumber - b.partNumber);
  await completed(token, all);
  return { found, sent: sent.map((p) => p.partNumber) };
}

/** Where the store lists parts, that it has none for this upload. */
async function assertNoPartsStored(store, token) {
  if (!store.listsParts) return;
  const listing = await listParts(token);
  assert.equal(listing.status, 200, redacted(listing.text));
  assert.deepEqual(listing.body.parts, [], 'the refused part is not in the store');
}

async function uppyCreate(body) {
  const response = await callApi(worker, '/s3/multipart', { credential: API_KEY, json: body });
  assert.equal(response.status, 200, `POST /s3/multipart: ${redacted(response.text)}`);
  assert.equal(typeof response.body.uploadId, 'string');
  assert.equal(typeof response.body.key, 'string');
  return response.body;
}

async function uppyGet(pathAndQuery) {
  const response = await callApi(worker, pathAndQuery, { method: 'GET', credential: API_KEY });
  const route = pathAndQuery.split('?')[0];
  assert.equal(response.status, 200, `GET ${route}: ${redacted(response.text)}`);
  return response.body;
}

async function uppyComplete(upload, parts) {
  const response = await callApi(worker, `${uploadPath(upload)}/complete?${keyQuery(upload)}`,
    { credential: API_KEY, json: { parts } });
  assert.equal(response.status, 200, `complete: ${redacted(response.text)}`);
  return response.body;
}

function uploadPath(upload) {
  return `/s3/multipart/${encodeURIComponent(upload.uploadId)}`;
}

function batchPath(upload, partNumbers) {
  return `${uploadPath(upload)}/batch?${keyQuery(upload)}&partNumbers=${partNumbers.join(',')}`;
}

function keyQuery(upload) {
  return new URLSearchParams({ key: upload.key }).toString();
}

/** The key a path-style URL of this store's bucket names. */
function keyOfStoreUrl(store, url) {
  const bucketPath = `${new URL(clientOf(store).bucketUrl).pathname}/`;
  const { pathname } = new URL(url);
  assert.ok(pathname.startsWith(bucketPath), `${pathname} is not in ${bucketPath}`);
  return pathname.slice(bucketPath.length).split('/').map(decodeURIComponent).join('/');
}
