// The test page's script: the real @uppy/core and @uppy/aws-s3 (5.x) pointed at the
// signer's /s3/ routes, set up exactly as the README tells an Uppy user to. uppy.test.mjs
// bundles it with esbuild and drives it through `window.uppyPage`.
//
// Files come from the page's <input type=file>, as a user would pick them.

import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';

/**
 * The configuration the README shows: the signer's origin and a bearer token. Only a
 * test of what happens without it passes `sizeInMetadata: false`.
 */
function createUppy(endpoint, token, { sizeInMetadata = true } = {}) {
  const uppy = new Uppy().use(AwsS3, {
    endpoint,
    headers: { authorization: `Bearer ${token}` },
    shouldUseMultipart: (file) => file.size > 8 * 1024 * 1024,
  });
  if (sizeInMetadata) {
    uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: file.size }));
  }
  return uppy;
}

let uppy;
const events = { partsUploaded: [], uploadErrors: [], progress: {} };

function start(endpoint, token, options) {
  uppy = createUppy(endpoint, token, options);
  uppy.on('s3-multipart:part-uploaded', (file, part) => {
    events.partsUploaded.push({ name: file.name, partNumber: part.PartNumber });
  });
  uppy.on('upload-error', (file, error) => {
    events.uploadErrors.push({ name: file?.name, message: error?.message, cause: describeCause(error) });
  });
  uppy.on('upload-progress', (file, progress) => {
    events.progress[file.name] = { bytesUploaded: progress.bytesUploaded, bytesTotal: progress.bytesTotal };
  });
  document.querySelector('#file-input').addEventListener('change', (event) => {
    for (const file of event.target.files) {
      uppy.addFile({ name: file.name, type: file.type, data: file, source: 'file-input' });
    }
  });
}

/** Uploads every added file; resolves with what Uppy reports, in plain data. */
async function upload() {
  const result = await uppy.upload();
  return {
    successful: (result?.successful ?? []).map(describeFile),
    failed: (result?.failed ?? []).map(describeFile),
    events,
  };
}

/** The files Uppy holds, with the metadata it will send. */
function files() {
  return uppy.getFiles().map(describeFile);
}

function describeFile(file) {
  return {
    name: file.name,
    type: file.type,
    size: file.size,
    meta: file.meta,
    multipartKey: file.s3Multipart?.key,
    response: file.response && {
      status: file.response.status,
      uploadURL: file.response.uploadURL,
      body: file.response.body,
    },
    error: file.error ?? undefined,
  };
}

function describeCause(error) {
  const cause = error?.cause;
  if (!cause) return undefined;
  return { name: cause.name, message: cause.message, statusCode: cause.statusCode };
}

window.uppyPage = { start, upload, files };
