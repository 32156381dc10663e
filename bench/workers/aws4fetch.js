// Comparison Worker: signs with aws4fetch, as Cloudflare's R2 documentation shows
// (`AwsClient.sign` with `signQuery: true`). `allHeaders: true` makes it sign
// content-type and content-length too, which aws4fetch leaves out by default; without
// them the URL would accept a body of any type and size, unlike edge-presigner's.
//
// One AwsClient per bucket is kept for the isolate's life, so aws4fetch's cache of
// signing keys is used across requests (edge-presigner derives the key per request).

import { AwsClient } from 'aws4fetch';

import { credentialsOf, makeWorker, objectUrl, regionOf, storeError } from './common.js';

const clients = new Map();

function clientFor(bucket, env) {
  let client = clients.get(bucket);
  if (!client) {
    client = new AwsClient({
      ...credentialsOf(bucket, env), service: 's3', region: regionOf(bucket), retries: 0,
    });
    clients.set(bucket, client);
  }
  return client;
}

async function presign(client, url, headers, expiresIn) {
  url.searchParams.set('X-Amz-Expires', String(expiresIn));
  const signed = await client.sign(url, {
    method: 'PUT',
    headers,
    aws: { signQuery: true, allHeaders: true },
  });
  return signed.url;
}

export default makeWorker({
  signPut({ bucket, key, headers, expiresIn, env }) {
    return presign(clientFor(bucket, env), new URL(objectUrl(bucket, key)), headers, expiresIn);
  },

  signParts({ bucket, key, uploadId, parts, expiresIn, env }) {
    const client = clientFor(bucket, env);
    const base = objectUrl(bucket, key);
    return Promise.all(parts.map(({ partNumber, headers }) => {
      const url = new URL(base);
      url.searchParams.set('partNumber', String(partNumber));
      url.searchParams.set('uploadId', uploadId);
      return presign(client, url, headers, expiresIn);
    }));
  },

  async listParts({ bucket, key, uploadId, env }) {
    const url = new URL(objectUrl(bucket, key));
    url.searchParams.set('uploadId', uploadId);
    url.searchParams.set('max-parts', '1');
    const response = await clientFor(bucket, env).fetch(url, { method: 'GET' });
    await response.arrayBuffer();
    if (response.status !== 200) throw storeError(response.status);
  },
});
