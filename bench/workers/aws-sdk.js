// Comparison Worker: signs with the AWS SDK for JavaScript v3
// (`getSignedUrl` of @aws-sdk/s3-request-presigner with PutObjectCommand and
// UploadPartCommand of @aws-sdk/client-s3), and checks the upload with ListPartsCommand.
//
// The presigner leaves content-type unsigned and moves x-amz-* headers into the query
// unless told otherwise: `signableHeaders` and `unhoistableHeaders` make it sign the same
// headers as edge-presigner, which the client then sends. Checksums are computed only
// when required, so no empty-body CRC32 is signed into the URL.
//
// One S3Client per bucket is kept for the isolate's life.

import {
  ListPartsCommand, PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

import { credentialsOf, makeWorker, regionOf, storeError } from './common.js';

const clients = new Map();

function clientFor(bucket, env) {
  let client = clients.get(bucket);
  if (!client) {
    client = new S3Client({
      region: regionOf(bucket),
      endpoint: bucket.endpoint,
      forcePathStyle: true,
      credentials: credentialsOf(bucket, env),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
    clients.set(bucket, client);
  }
  return client;
}

export default makeWorker({
  signPut({ bucket, key, headers, expiresIn, env }) {
    const metadata = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith('x-amz-meta-')) metadata[name.slice('x-amz-meta-'.length)] = value;
    }
    const command = new PutObjectCommand({
      Bucket: bucket.bucket,
      Key: key,
      ContentType: headers['content-type'],
      ContentLength: Number(headers['content-length']),
      IfNoneMatch: headers['if-none-match'],
      ChecksumSHA256: headers['x-amz-checksum-sha256'],
      Metadata: metadata,
    });
    const kept = Object.keys(headers).filter((name) => name.startsWith('x-amz-'));
    return getSignedUrl(clientFor(bucket, env), command, {
      expiresIn,
      signableHeaders: new Set(['content-type', 'content-length']),
      unhoistableHeaders: new Set(kept),
    });
  },

  signParts({ bucket, key, uploadId, parts, expiresIn, env }) {
    const client = clientFor(bucket, env);
    return Promise.all(parts.map(({ partNumber, headers }) => getSignedUrl(
      client,
      new UploadPartCommand({
        Bucket: bucket.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        ContentLength: Number(headers['content-length']),
      }),
      { expiresIn, signableHeaders: new Set(['content-length']) },
    )));
  },

  async listParts({ bucket, key, uploadId, env }) {
    try {
      await clientFor(bucket, env).send(new ListPartsCommand({
        Bucket: bucket.bucket, Key: key, UploadId: uploadId, MaxParts: 1,
      }));
    } catch (error) {
      throw storeError(error?.$metadata?.httpStatusCode ?? 502);
    }
  },
});
