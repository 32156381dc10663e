// The part of the two comparison Workers that does not sign: routing, API-key
// authentication, reading and checking the JSON body, the upload profile, the object key,
// the multipart upload token, the answers and one audit line per request.
//
// It follows what edge-presigner does for the two benchmarked routes closely enough that
// the Workers differ only in how they sign:
//   GET  /v1/health            no authentication, no configuration: the baseline
//   POST /v1/uploads           a single presigned PUT (multipart starts are not served)
//   POST /v1/multipart/parts   part URLs for an upload token that edge-presigner made
// It reads the same variables (BUCKETS, PROFILES, AUTH) and secrets as edge-presigner, so
// one workerd configuration serves all three Workers. Only API keys are accepted, and
// only `s3-compatible` buckets are understood: that is all the benchmark uses.
//
// A signer module gives makeWorker three functions:
//   signPut({ bucket, key, headers, expiresIn, env })           -> URL string
//   signParts({ bucket, key, uploadId, parts, expiresIn, env }) -> URL strings, in order
//   listParts({ bucket, key, uploadId, env })                   -> resolves when it exists

const MAX_BODY_BYTES = 64 * 1024;
const MAX_PARTS = 10_000;
const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024;
const encoder = new TextEncoder();

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function makeWorker(signer) {
  return {
    async fetch(request, env) {
      const started = new Date();
      const record = { requestId: crypto.randomUUID().slice(0, 16), time: iso(started) };
      let response;
      try {
        response = await handle(request, env, signer, started, record);
        record.decision = 'allowed';
      } catch (error) {
        if (!(error instanceof ApiError)) {
          record.detail = String(error?.stack ?? error);
          error = new ApiError(500, 'internal', 'the request could not be answered');
        }
        record.decision = error.status >= 500 ? 'error' : 'refused';
        record.reason = error.code;
        const body = { error: { code: error.code, message: error.message } };
        if (error.field) body.error.field = error.field;
        response = json(error.status, body);
        if (error.status === 401) response.headers.set('www-authenticate', 'Bearer');
      }
      record.status = response.status;
      console.log(JSON.stringify(record));
      return response;
    },
  };
}

async function handle(request, env, signer, now, record) {
  const url = new URL(request.url);
  const route = `${request.method} ${url.pathname}`;
  if (route === 'GET /v1/health') {
    record.route = 'health';
    return json(200, { status: 'ok', version: 'bench' });
  }
  if (route !== 'POST /v1/uploads' && route !== 'POST /v1/multipart/parts') {
    record.route = 'unknown';
    throw new ApiError(404, 'not_found', `no route ${url.pathname}`);
  }
  record.route = route === 'POST /v1/uploads' ? 'create-upload' : 'sign-parts';

  const subject = authenticate(request.headers.get('authorization'), env);
  record.subject = subject;
  const body = await readJson(request);
  if (route === 'POST /v1/uploads') {
    return json(201, await createUpload(body, subject, env, signer, now, record));
  }
  return json(200, await signParts(body, subject, env, signer, now, record));
}

// ---------------------------------------------------------------------------------------
// Authentication: `Bearer <API key>`, compared with every configured key in constant time.

function authenticate(header, env) {
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) {
    throw new ApiError(401, 'unauthorized',
      'the Authorization header must be `Bearer <credential>`');
  }
  const presented = encoder.encode(match[1]);
  let subject = null;
  for (const key of env.AUTH.apiKeys ?? []) {
    const expected = encoder.encode(env[key.secret] ?? '');
    if (sameBytes(presented, expected) && subject === null) subject = key.name;
  }
  if (subject === null) {
    throw new ApiError(401, 'unauthorized', 'the bearer credential is not a valid API key');
  }
  return subject;
}

function sameBytes(a, b) {
  // timingSafeEqual needs equal lengths; comparing a with itself keeps the time the same.
  if (a.byteLength !== b.byteLength) {
    crypto.subtle.timingSafeEqual(a, a);
    return false;
  }
  return crypto.subtle.timingSafeEqual(a, b);
}

async function readJson(request) {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, 'unsupported_media_type', 'the request body must be application/json');
  }
  if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY_BYTES) {
    throw new ApiError(413, 'too_large', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    throw new ApiError(413, 'too_large', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'invalid_request', 'the request body is not valid JSON');
  }
}

// ---------------------------------------------------------------------------------------
// POST /v1/uploads

async function createUpload(body, subject, env, signer, now, record) {
  const request = checkUploadRequest(body);
  const profile = env.PROFILES[request.profile];
  if (!profile) {
    throw new ApiError(404, 'not_found', `there is no profile \`${request.profile}\``, 'profile');
  }
  const bucket = env.BUCKETS[profile.bucket];
  record.profile = request.profile;
  record.bucket = profile.bucket;
  record.size = request.size;

  if (!contentTypeAllowed(request.contentType, profile.contentTypes)) {
    throw new ApiError(415, 'unsupported_media_type',
      'this profile does not accept that content type', 'contentType');
  }
  if (request.size > profile.maxSize) {
    throw new ApiError(413, 'too_large',
      `size is above the limit of ${profile.maxSize} bytes`, 'size');
  }
  const threshold = profile.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
  if (request.multipart || request.size >= threshold) {
    throw new ApiError(501, 'not_implemented', 'this comparison Worker signs single uploads only');
  }
  const metadata = mergeMetadata(profile.metadata ?? {}, request.metadata);
  const expiresIn = profile.expiresIn;
  const key = renderKey(profile.keyTemplate, subject, request.filename, now);
  record.key = key;

  const headers = {
    'content-length': String(request.size),
    'content-type': request.contentType,
  };
  if (request.checksumSha256) headers['x-amz-checksum-sha256'] = request.checksumSha256;
  if (!profile.overwrite) headers['if-none-match'] = '*';
  for (const [name, value] of Object.entries(metadata)) headers[`x-amz-meta-${name}`] = value;
  const sorted = Object.fromEntries(Object.entries(headers).sort(([a], [b]) => (a < b ? -1 : 1)));

  const url = await signer.signPut({ bucket, key, headers: sorted, expiresIn, env });
  return {
    type: 'single',
    bucket: bucket.bucket,
    key,
    method: 'PUT',
    url,
    headers: sorted,
    expiresAt: iso(new Date(now.getTime() + expiresIn * 1000)),
  };
}

function checkUploadRequest(body) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'invalid_request', 'the request body must be a JSON object');
  }
  const { profile = 'default', filename, contentType, size, checksumSha256, metadata = {} } = body;
  const field = (name, message) => new ApiError(400, 'invalid_request', message, name);
  if (typeof profile !== 'string') throw field('profile', 'profile must be a string');
  if (typeof filename !== 'string' || filename.trim() === '' || filename.length > 1024) {
    throw field('filename', 'filename must be 1 to 1024 bytes and not only spaces');
  }
  if (typeof contentType !== 'string') throw field('contentType', 'contentType is required');
  if (!Number.isSafeInteger(size) || size < 0) {
    throw field('size', 'size must be a whole number of bytes');
  }
  if (checksumSha256 !== undefined && !isSha256Base64(checksumSha256)) {
    throw field('checksumSha256', 'checksumSha256 must be the base64 of a 32-byte SHA-256 digest');
  }
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw field('metadata', 'metadata must be an object of strings');
  }
  const multipart = body.multipart === true;
  return { profile, filename, contentType, size, checksumSha256, metadata, multipart };
}

function isSha256Base64(text) {
  return typeof text === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(text);
}

function contentTypeAllowed(type, allowed) {
  const lower = type.toLowerCase().split(';')[0].trim();
  return allowed.some((rule) => rule === '*/*' || rule === lower
    || (rule.endsWith('/*') && lower.startsWith(rule.slice(0, -1))));
}

function mergeMetadata(fromProfile, requested) {
  const merged = { ...fromProfile };
  for (const [name, value] of Object.entries(requested)) {
    const lower = name.toLowerCase();
    const printable = typeof value === 'string' && /^[\x20-\x7e]*$/.test(value);
    if (!/^[a-z0-9_-]{1,128}$/.test(lower) || !printable) {
      throw new ApiError(400, 'invalid_request', `metadata \`${name}\` is not allowed`, 'metadata');
    }
    if (lower in fromProfile) {
      throw new ApiError(400, 'invalid_request',
        `metadata \`${name}\` is set by the profile`, 'metadata');
    }
    merged[lower] = value;
  }
  return merged;
}

function renderKey(template, subject, filename, now) {
  const safeName = cleanFilename(filename);
  const dot = safeName.lastIndexOf('.');
  const values = {
    // API keys own `~key-<name>`, as in edge-presigner.
    subject: `~key-${encodeURIComponent(subject)}`,
    uuid: crypto.randomUUID(),
    filename: safeName,
    ext: dot > 0 ? safeName.slice(dot + 1) : '',
    date: iso(now).slice(0, 10),
    year: iso(now).slice(0, 4),
    month: iso(now).slice(5, 7),
    day: iso(now).slice(8, 10),
  };
  const key = template.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? '');
  if (encoder.encode(key).length > 1024) {
    throw new ApiError(400, 'invalid_request',
      'the object key made from this filename is too long', 'filename');
  }
  return key;
}

function cleanFilename(filename) {
  const last = filename.split(/[\\/]/).pop();
  // Control characters and bidi overrides removed, dots at the ends trimmed.
  const clean = last.replace(/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g, '')
    .trim().replace(/^\.+|\.+$/g, '');
  return clean.slice(0, 255) || 'file';
}

// ---------------------------------------------------------------------------------------
// POST /v1/multipart/parts

async function signParts(body, subject, env, signer, now, record) {
  const { token, partNumbers } = body ?? {};
  if (typeof token !== 'string') {
    throw new ApiError(400, 'invalid_request', 'token is required', 'token');
  }
  const upload = await openToken(token, env, now);
  if (upload.subject !== `~key-${subject}`) {
    throw new ApiError(403, 'forbidden', 'this upload belongs to another subject', 'token');
  }
  const profile = env.PROFILES[upload.profile];
  if (!profile || profile.bucket !== upload.bucket) {
    throw new ApiError(409, 'conflict', 'the upload\'s profile now writes to another bucket');
  }
  const bucket = env.BUCKETS[upload.bucket];
  record.profile = upload.profile;
  record.bucket = upload.bucket;
  record.key = upload.key;
  checkPartNumbers(partNumbers, upload.plan);

  await signer.listParts({ bucket, key: upload.key, uploadId: upload.upload_id, env });

  const secondsLeft = upload.expires - Math.floor(now.getTime() / 1000);
  const expiresIn = Math.max(1, Math.min(profile.expiresIn, secondsLeft));
  const parts = partNumbers.map((partNumber) => ({
    partNumber,
    headers: { 'content-length': String(partLength(upload.plan, partNumber)) },
  }));
  const urls = await signer.signParts({
    bucket, key: upload.key, uploadId: upload.upload_id, parts, expiresIn, env,
  });
  return {
    parts: parts.map((part, i) => ({
      partNumber: part.partNumber, url: urls[i], headers: part.headers,
    })),
    expiresAt: iso(new Date(now.getTime() + expiresIn * 1000)),
  };
}

const tokenKeys = new Map();

/** Opens an upload token of edge-presigner: base64url(JSON) "." base64url(HMAC-SHA256). */
async function openToken(token, env, now) {
  const invalid = () => new ApiError(401, 'unauthorized', 'the upload token is not valid', 'token');
  const [payload, tag, extra] = token.split('.');
  if (!payload || !tag || extra !== undefined || token.length > 4096) throw invalid();
  let key = tokenKeys.get(env.TOKEN_SECRET);
  if (!key) {
    key = await crypto.subtle.importKey(
      'raw', encoder.encode(env.TOKEN_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'],
    );
    tokenKeys.set(env.TOKEN_SECRET, key);
  }
  let fields;
  try {
    const ok = await crypto.subtle.verify('HMAC', key, base64url(tag), encoder.encode(payload));
    if (!ok) throw invalid();
    fields = JSON.parse(new TextDecoder().decode(base64url(payload)));
  } catch {
    throw invalid();
  }
  if (fields.v !== 1) throw invalid();
  if (Math.floor(now.getTime() / 1000) > fields.expires) {
    throw new ApiError(401, 'unauthorized', 'the upload token has expired', 'token');
  }
  return fields;
}

function base64url(text) {
  const plain = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = plain + '='.repeat((4 - (plain.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function checkPartNumbers(numbers, plan) {
  const bad = (message) => new ApiError(400, 'invalid_request', message, 'partNumbers');
  if (!Array.isArray(numbers) || numbers.length === 0 || numbers.length > MAX_PARTS) {
    throw bad(`partNumbers must list 1 to ${MAX_PARTS} part numbers`);
  }
  const last = plan ? plan.part_count : MAX_PARTS;
  const seen = new Set();
  for (const n of numbers) {
    if (!Number.isInteger(n) || n < 1 || n > last) {
      throw bad(`part ${n} is outside this upload's parts 1 to ${last}`);
    }
    if (seen.has(n)) throw bad(`part ${n} is listed twice`);
    seen.add(n);
  }
}

function partLength(plan, number) {
  if (number < plan.part_count) return plan.part_size;
  return plan.size - plan.part_size * (plan.part_count - 1);
}

// ---------------------------------------------------------------------------------------
// Helpers the signers share

/** The object's URL with the key encoded once per segment, as S3 expects. */
export function objectUrl(bucket, key) {
  const encodedKey = key.split('/').map(encodeSegment).join('/');
  return `${bucket.endpoint.replace(/\/$/, '')}/${bucket.bucket}/${encodedKey}`;
}

function encodeSegment(segment) {
  const hex = (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;
  return encodeURIComponent(segment).replace(/[!'()*]/g, hex);
}

/** The bucket's credentials from the secrets its `credentials` prefix names. */
export function credentialsOf(bucket, env) {
  return {
    accessKeyId: env[`${bucket.credentials}_ACCESS_KEY_ID`],
    secretAccessKey: env[`${bucket.credentials}_SECRET_ACCESS_KEY`],
    sessionToken: env[`${bucket.credentials}_SESSION_TOKEN`] || undefined,
  };
}

/** The signing region: `s3-compatible` stores default to us-east-1, as in edge-presigner. */
export function regionOf(bucket) {
  return bucket.region ?? 'us-east-1';
}

export function storeError(status) {
  if (status === 404) {
    return new ApiError(409, 'conflict', 'the multipart upload no longer exists');
  }
  return new ApiError(502, 'storage_error', `the object store answered with status ${status}`);
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

function iso(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
