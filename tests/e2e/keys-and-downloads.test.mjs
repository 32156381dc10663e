// End to end: awkward file names through the whole round trip, on the local R2 store
// (profile `default`) and on SeaweedFS (profile `seaweed`). A file goes up with the
// presigned PUT, the store's own listing (read with our client, not the Worker) must hold
// exactly the key the Worker returned, and the presigned GET of POST /v1/downloads must
// give the same bytes under the Content-Disposition asked for. Also what each store does
// with the signed x-amz-checksum-sha256 and If-None-Match headers.
//
// wrangler dev's local store ignores response-content-disposition (measured: a GET signed
// by our own client gets no Content-Disposition either), so there only the URL's request
// for it is checked.
//
// Run: node --test --test-concurrency=1 tests/e2e/keys-and-downloads.test.mjs

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  API_KEY,
  API_KEY_OWNER,
  STORES,
  callApi,
  createUpload,
  jwtClaims,
  randomBytes,
  sha256,
  sha256Base64,
  signJwt,
  storeClient,
  useSeaweedFS,
  useWorker,
} from './harness.mjs';

const seaweed = useSeaweedFS();
const worker = useWorker({ seaweed });

const REQUEST_TIMEOUT_MS = 30_000;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * File names that URL encoders, signers and stores get wrong, each with the name the
 * key must end with. The Worker keeps a name as it is (no Unicode normalisation) unless
 * it is longer than 255 bytes, which it cuts keeping the extension.
 */
const AWKWARD_NAMES = [
  { label: 'spaces', filename: 'two  spaced words.txt' },
  { label: 'a plus', filename: 'one+one.txt' },
  { label: 'a percent sign', filename: '100% done.txt' },
  { label: 'an encoded slash', filename: 'not%2Fa folder.txt' },
  { label: 'what looks like percent-encoding', filename: '%E2%82%AC.txt' },
  { label: 'a tilde', filename: '~tilde~.txt' },
  { label: "the characters !'()*", filename: "wow!'(really)'*.txt" },
  { label: 'an equals sign', filename: 'a=b.txt' },
  { label: 'an ampersand', filename: 'this&that.txt' },
  { label: 'a question mark', filename: 'why?.txt' },
  { label: 'a hash', filename: '#1 hit.txt' },
  { label: 'NFC unicode', filename: 'r\u00e9sum\u00e9 NFC.txt' },
  { label: 'NFD unicode', filename: 're\u0301sume\u0301 NFD.txt' },
  { label: 'emoji', filename: '\u{1F389} party \u{1F469}\u200D\u{1F469}\u200D\u{1F467}.txt' },
  {
    label: 'a 305-byte ASCII name',
    filename: `long-${'x'.repeat(296)}.txt`,
    keyName: `long-${'x'.repeat(246)}.txt`, // 255 bytes
  },
  {
    label: 'a 404-byte name of 2-byte characters',
    filename: `${'\u00e9'.repeat(200)}.txt`,
    keyName: `${'\u00e9'.repeat(125)}.txt`, // 254 bytes: 255 would split a character
  },
];

// ---------------------------------------------------------------------------------------
// Helpers

function clientOf(store) {
  return storeClient(store, { worker, seaweed });
}

/** POST /v1/uploads for `body`, asserting 201 and a single upload. */
async function presign(store, body, fields = {}) {
  const request = {
    profile: store.profile,
    filename: 'file.txt',
    contentType: 'text/plain',
    size: body.length,
    ...fields,
  };
  const response = await createUpload(worker, request);
  assert.equal(response.status, 201, `POST /v1/uploads: ${redacted(response.text)}`);
  assert.equal(response.body.type, 'single');
  return response.body;
}

function putToStore(url, headers, body) {
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  return fetch(url, { method: 'PUT', headers, body, signal });
}

/** Presigns and PUTs `body` with exactly the returned headers, asserting 200. */
async function upload(store, body, fields) {
  const signed = await presign(store, body, fields);
  const response = await putToStore(signed.url, signed.headers, body);
  assert.equal(response.status, 200, `PUT answered ${response.status}: ${await response.text()}`);
  return signed;
}

function requestDownload(store, fields, credential = API_KEY) {
  return callApi(worker, '/v1/downloads', {
    credential,
    json: { profile: store.profile, ...fields },
  });
}

async function readStored(store, key) {
  const response = await clientOf(store).getObject(key);
  return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
}

/** The folder of a key made by the template `users/{subject}/{uuid}/{filename}`. */
function folderOf(key) {
  return key.slice(0, key.lastIndexOf('/') + 1);
}

/**
 * Reads `attachment; filename="fallback"[; filename*=UTF-8''encoded]` (RFC 6266): the
 * type, the ASCII fallback, and the name a browser uses (the extended one if present).
 */
function parseDisposition(header) {
  const match = /^(attachment|inline); filename="([^"\\]*)"(?:; filename\*=UTF-8''([^;\s]+))?$/
    .exec(header ?? '');
  assert.ok(match, `Content-Disposition ${JSON.stringify(header)} is not of the expected form`);
  const [, type, fallback, extended] = match;
  const name = extended === undefined ? fallback : decodeURIComponent(extended);
  return { type, fallback, extended, name };
}

/** An attachment whose name, as a browser reads it, is `name`, with an ASCII fallback. */
function assertDisposition(header, name, whose) {
  const disposition = parseDisposition(header);
  assert.equal(disposition.type, 'attachment', `${whose}: ${header}`);
  assert.equal(disposition.name, name, `${whose}: the browser saves it under its own name`);
  assert.match(disposition.fallback, /^[\x20-\x7e]*$/, `${whose}: the fallback name is ASCII`);
  if (disposition.extended === undefined) {
    // RFC 6266, appendix D: user agents decode %XX in filename=, so such a name needs
    // filename* (Chromium does: filename="a%2Fb" is saved as a_b).
    const message = `${whose}: ${header} has %XX in filename= and no filename*`;
    assert.doesNotMatch(disposition.fallback, /%[0-9A-Fa-f]{2}/, message);
  }
}

/** An answer fit for a failure message: presigned URLs lose their signature. */
function redacted(text) {
  return text.replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1<redacted>');
}

function assertError(response, status, code) {
  const answer = `${response.status} ${redacted(response.text)}`;
  assert.equal(response.status, status, answer);
  assert.equal(response.body?.error?.code, code, answer);
}

// ---------------------------------------------------------------------------------------

for (const store of STORES) {
  describe(`awkward file names on ${store.name} (profile ${store.profile})`, () => {
    AWKWARD_NAMES.forEach(({ label, filename, keyName = filename }, index) => {
      const title = `a name with ${label} is stored under its key and downloads as itself`;
      test(title, async () => {
        const body = randomBytes(1000 + index);

        const signed = await upload(store, body, { filename });
        const listed = await clientOf(store).listObjects(folderOf(signed.key));
        const download = await requestDownload(store, {
          key: signed.key,
          filename,
          disposition: 'attachment',
        });

        const keyPattern = new RegExp(`^users/${API_KEY_OWNER}/${UUID}/`);
        assert.match(signed.key, keyPattern);
        assert.equal(signed.key.slice(folderOf(signed.key).length), keyName);
        assert.deepEqual(listed.map(({ key, size }) => ({ key, size })),
          [{ key: signed.key, size: body.length }], 'the store holds exactly that key');
        assert.equal(download.status, 200, redacted(download.text));
        const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
        const got = await fetch(download.body.url, { signal });
        const bytes = Buffer.from(await got.arrayBuffer());
        assert.equal(got.status, 200, `GET of the download URL: ${bytes}`);
        assert.equal(sha256(bytes), sha256(body), 'the download gives the uploaded bytes');
        const asked = new URL(download.body.url).searchParams.get('response-content-disposition');
        assertDisposition(asked, keyName, 'the URL asks for');
        if (store.honoursResponseHeaders) {
          assertDisposition(got.headers.get('content-disposition'), keyName, 'the store sends');
        }
      });
    });
  });

  describe(`downloads and signed headers on ${store.name}`, () => {
    test("a download of another subject's key gets 403", async () => {
      const signed = await upload(store, randomBytes(100));
      const stranger = await signJwt(jwtClaims('someone-else'));

      const response = await requestDownload(store, { key: signed.key }, stranger);

      assertError(response, 403, 'forbidden');
    });

    test('a body that matches the declared checksumSha256 lands', async () => {
      const body = randomBytes(4096);

      const signed = await upload(store, body, { checksumSha256: sha256Base64(body) });

      const stored = await readStored(store, signed.key);
      assert.equal(sha256(stored.bytes), sha256(body));
    });

    test('a body of the same size that does not match the signed checksum is refused', {
      skip: !store.checksChecksums
        && 'wrangler dev\'s local store does not check x-amz-checksum-sha256',
    }, async (t) => {
      const body = randomBytes(4096);
      const signed = await presign(store, body, { checksumSha256: sha256Base64(body) });

      const other = randomBytes(body.length);
      const response = await putToStore(signed.url, signed.headers, other);
      const text = await response.text();
      const answer = `${response.status} ${errorCode(text)}`;
      t.diagnostic(`${store.name}: a body against the signed checksum: ${answer}`);

      assert.ok(response.status >= 400 && response.status < 500, `${response.status} ${text}`);
      assert.equal((await readStored(store, signed.key)).status, 404, 'nothing landed');
    });

    test('a second PUT to the same URL is refused by If-None-Match: * with 412', async (t) => {
      const first = randomBytes(1000);
      const signed = await upload(store, first);

      const response = await putToStore(signed.url, signed.headers, randomBytes(first.length));
      const text = await response.text();
      const answer = `${response.status} ${errorCode(text)}`;
      t.diagnostic(`${store.name}: a second PUT with If-None-Match: *: ${answer}`);

      assert.equal(response.status, 412, text);
      assert.equal(sha256((await readStored(store, signed.key)).bytes), sha256(first));
    });

    // S3 refuses an x-amz-* header that a presigned URL does not sign; the README's table
    // of what each store enforces says what these two do, as measured here.
    const unsigned = store.refusesUnsignedHeaders ? 'is refused' : 'is stored (this store checks only what is signed)';
    test(`an x-amz-meta header the URL does not sign ${unsigned}`, async (t) => {
      const body = randomBytes(100);
      const signed = await presign(store, body);

      const response = await putToStore(signed.url, { ...signed.headers, 'x-amz-meta-extra': '1' }, body);
      const text = await response.text();
      const head = await clientOf(store).headObject(signed.key);
      const kept = head.headers.get('x-amz-meta-extra');
      t.diagnostic(`${store.name}: ${response.status} ${errorCode(text)}; object ${head.status}, x-amz-meta-extra ${kept}`);

      if (store.refusesUnsignedHeaders) {
        assert.equal(response.status, 403, text);
        assert.equal(head.status, 404, 'nothing landed');
      } else {
        assert.equal(response.status, 200, text);
        assert.equal(kept, '1');
      }
    });
  });
}

function errorCode(xml) {
  return /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? '';
}
