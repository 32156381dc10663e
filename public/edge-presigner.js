// edge-presigner.js: the browser client of the edge-presigner signer.
//
// An ES module with no dependencies and no build step. For each file it asks the signer
// for an upload (POST /v1/uploads) and sends the bytes straight to the object store:
// one presigned PUT, or a multipart upload whose parts it signs in batches, sends several
// at once, retries with exponential backoff, and completes. An upload can be paused,
// resumed (also after a page reload: the upload token and the parts already sent are
// remembered in localStorage under the file's name, size and lastModified) and cancelled
// (which aborts the multipart upload in the store). Progress (bytes, percent, speed, time
// left) is reported per file and for all files.
//
// PUTs use XMLHttpRequest because fetch() reports no upload progress. They carry exactly
// the headers the signer returned, except those a browser sets itself and forbids scripts
// to set (`content-length`): the body's length is checked against it instead.
//
// The store's side of the browser contract: the bucket's CORS rule must allow PUT from
// the page's origin and expose the `ETag` header, without which no multipart upload can
// be completed (the client says so when it meets a part response without a readable ETag).
//
// Use, from the Worker (`import ... from '/edge-presigner.js'`) or from a package that
// depends on public/ (its package.json exports this file with its types):
//
//   import { Uploader } from './edge-presigner.js';
//   const uploader = new Uploader({
//     endpoint: 'https://signer.example.com',    // default: the page's origin
//     getToken: async () => myBearerCredential,  // a JWT for the signer
//     multipartThreshold: 8 * 1024 * 1024,       // else the signer's profile decides
//   });
//   const upload = uploader.add(file);           // starts at once
//   upload.addEventListener('progress', (e) => show(e.detail.percent, e.detail.speed));
//   const { key } = await upload.start();        // the same promise on every call

const MiB = 1024 * 1024;

const DEFAULTS = {
  concurrency: 4,
  maxAttempts: 5,
  retryDelayMs: 1000,
  maxRetryDelayMs: 30_000,
  signBatchSize: 50,
  progressIntervalMs: 100,
};

// How often a call to the signer is tried (parts have their own maxAttempts).
const SIGNER_ATTEMPTS = 3;
// A signed URL is re-signed when it has less than this left.
const URL_MARGIN_MS = 60_000;
// A remembered upload is resumed only if its token has at least this long to live.
const RESUME_MARGIN_MS = 5 * 60_000;
// The remembered ETags are written at most this often while parts finish.
const SAVE_INTERVAL_MS = 500;
// Speed is measured over this much recent time.
const SPEED_WINDOW_MS = 5000;
const STORAGE_PREFIX = 'edge-presigner:v1:';

// Request headers that a browser sets itself and refuses from scripts (Fetch standard,
// "forbidden request-header"). The signer signs `content-length`; the browser sends the
// real length of the body, which is checked against the signed value before sending.
const FORBIDDEN_HEADERS = new Set([
  'accept-charset', 'accept-encoding', 'access-control-request-headers',
  'access-control-request-method', 'connection', 'content-length', 'cookie', 'cookie2',
  'date', 'dnt', 'expect', 'host', 'keep-alive', 'origin', 'referer', 'set-cookie', 'te',
  'trailer', 'transfer-encoding', 'upgrade', 'via',
]);

/** The states an upload goes through. */
export const UploadState = Object.freeze({
  queued: 'queued',
  preparing: 'preparing',
  uploading: 'uploading',
  paused: 'paused',
  completing: 'completing',
  done: 'done',
  failed: 'failed',
  canceled: 'canceled',
});

const ACTIVE_STATES = new Set(['queued', 'preparing', 'uploading']);
const FINAL_STATES = new Set(['done', 'failed', 'canceled']);

/**
 * An error of the signer, the store or the client. `code` is the signer's error code
 * (`unauthorized`, `too_large`, ...) or one of the client's: `network`, `store_error`,
 * `etag_unreadable`, `size_mismatch`, `canceled`.
 */
export class UploadError extends Error {
  constructor(code, message, { status, field, retryable = false, retryAfterMs, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'UploadError';
    this.code = code;
    this.status = status;
    this.field = field;
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
  }
}

// ---------------------------------------------------------------------------------------
// The signer's API

/** Calls the signer with the caller's bearer credential, retrying what may pass later. */
class Signer {
  constructor({ endpoint, getToken, fetch: fetchImpl, maxAttempts, retryDelayMs, maxRetryDelayMs }) {
    this.base = new URL(endpoint, globalThis.location?.href);
    this.getToken = getToken;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.retry = { maxAttempts: Math.min(maxAttempts, SIGNER_ATTEMPTS), retryDelayMs, maxRetryDelayMs };
  }

  /** Sends one call; returns the parsed JSON body (undefined for 204). */
  async call(method, path, { json, signal, attempts = this.retry.maxAttempts } = {}) {
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once(method, path, json, signal, refreshed);
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (error.code === 'unauthorized' && !refreshed) {
          refreshed = true; // the credential may have expired: ask for a fresh one, once
          continue;
        }
        if (!error.retryable || attempt >= attempts) throw error;
        await sleep(error.retryAfterMs ?? backoffMs(attempt, this.retry), signal);
      }
    }
  }

  async #once(method, path, json, signal, refresh) {
    const token = await this.getToken(refresh ? { refresh: true } : {});
    const headers = { authorization: `Bearer ${token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await this.fetch(new URL(path, this.base), {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
        signal,
        credentials: 'omit',
      });
    } catch (cause) {
      if (signal?.aborted) throw signal.reason;
      throw new UploadError('network', `the signer could not be reached (${path})`, {
        retryable: true,
        cause,
      });
    }
    const text = await response.text();
    if (response.ok) return text ? JSON.parse(text) : undefined;
    throw signerError(response, text);
  }
}

function signerError(response, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const { code = 'http_error', message, field } = body?.error ?? {};
  const status = response.status;
  const retryAfter = Number(response.headers.get('retry-after'));
  return new UploadError(code, message ?? `the signer answered HTTP ${status}`, {
    status,
    field,
    retryable: status === 429 || status === 503 || status === 502,
    retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
  });
}

// ---------------------------------------------------------------------------------------
// Remembered uploads (resume after a reload)

/** What localStorage holds for one multipart upload, keyed by the file's fingerprint. */
class Memory {
  constructor(storage, endpoint) {
    this.storage = storage;
    this.endpoint = endpoint;
  }

  keyFor(file) {
    return STORAGE_PREFIX + JSON.stringify([this.endpoint, file.name, file.size, file.lastModified]);
  }

  load(key) {
    try {
      const text = this.storage?.getItem(key);
      return text ? JSON.parse(text) : undefined;
    } catch {
      return undefined; // storage disabled, or a record this version cannot read
    }
  }

  save(key, record) {
    try {
      this.storage?.setItem(key, JSON.stringify(record));
    } catch {
      // Storage full or disabled: the upload goes on, it just cannot resume after a reload.
    }
  }

  remove(key) {
    try {
      this.storage?.removeItem(key);
    } catch {
      // nothing to do
    }
  }

  /** Every remembered upload of this signer, as [storageKey, record]. */
  entries() {
    const found = [];
    try {
      for (let i = 0; i < (this.storage?.length ?? 0); i++) {
        const key = this.storage.key(i);
        if (!key?.startsWith(STORAGE_PREFIX)) continue;
        const record = this.load(key);
        if (record?.endpoint === this.endpoint) found.push([key, record]);
      }
    } catch {
      // storage disabled
    }
    return found;
  }
}

// ---------------------------------------------------------------------------------------
// The uploader

/**
 * Uploads files through one signer. Dispatches `progress` events whose `detail` is the
 * overall progress of all its uploads that were not cancelled.
 */
export class Uploader extends EventTarget {
  #uploads = new Set();
  #throttle;

  /**
   * @param {object} options see edge-presigner.d.ts (UploaderOptions)
   */
  constructor(options) {
    super();
    if (typeof options?.getToken !== 'function') {
      throw new TypeError('Uploader needs a getToken() function that returns a bearer credential');
    }
    this.options = withDefaults(options);
    this.endpoint = new URL(options.endpoint ?? '/', globalThis.location?.href).href;
    this.signer = new Signer({ ...this.options, endpoint: this.endpoint });
    const storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.memory = new Memory(storage, this.endpoint);
    this.#throttle = throttled(this.options.progressIntervalMs, () => {
      this.dispatchEvent(new CustomEvent('progress', { detail: this.progress }));
    });
  }

  /** Creates an upload for a File (or Blob with a name) and starts it unless `start: false`. */
  add(file, options = {}) {
    const upload = new Upload(this, file, options);
    this.#uploads.add(upload);
    upload.addEventListener('progress', () => this.#throttle());
    upload.addEventListener('statechange', () => this.#throttle(true));
    if (options.start !== false) upload.start().catch(() => {}); // reported by the upload
    return upload;
  }

  /** All uploads added so far. */
  get uploads() {
    return [...this.#uploads];
  }

  /** The progress of every upload that was not cancelled, added up. */
  get progress() {
    // A cancelled or failed upload sends nothing more; counting it would hold the total
    // below 100 % for good.
    const counted = this.uploads.filter((u) => u.state !== 'canceled' && u.state !== 'failed');
    const parts = counted.map((u) => u.progress);
    const bytesSent = sum(parts.map((p) => p.bytesSent));
    const bytesTotal = sum(parts.map((p) => p.bytesTotal));
    const speed = sum(parts.map((p) => p.speed ?? 0));
    const active = counted.some((u) => !FINAL_STATES.has(u.state) && u.state !== 'paused');
    return summary(bytesSent, bytesTotal, active && speed > 0 ? speed : undefined);
  }

  /** Multipart uploads remembered from an earlier page that have not finished. */
  unfinished() {
    return this.memory.entries().map(([, record]) => ({
      name: record.name,
      size: record.size,
      lastModified: record.lastModified,
      key: record.key,
      partCount: record.partCount,
      partsDone: Object.keys(record.etags ?? {}).length,
      expiresAt: record.expiresAt,
      savedAt: record.savedAt,
    }));
  }

  /** Forgets a remembered upload and aborts it in the store (best effort). */
  async discard(entry) {
    const key = this.memory.keyFor(entry);
    const record = this.memory.load(key);
    this.memory.remove(key);
    if (!record) return;
    try {
      await this.signer.call('POST', '/v1/multipart/abort', { json: { token: record.plan?.token } });
    } catch {
      // An expired token or an upload that is gone: there is nothing left to abort.
    }
  }

  /** A presigned GET for a stored object: `POST /v1/downloads`. */
  downloadUrl(key, { filename, disposition, expiresIn, profile } = {}) {
    const json = { key, filename, disposition, expiresIn, profile };
    for (const name of Object.keys(json)) if (json[name] === undefined) delete json[name];
    return this.signer.call('POST', '/v1/downloads', { json });
  }
}

/**
 * One file on its way to the store. Dispatches `progress` (detail: its progress) and
 * `statechange` (detail: {state}) events.
 */
export class Upload extends EventTarget {
  #uploader;
  #options;
  #state = 'queued';
  #done;
  #controller;
  #resumed;
  #plan;
  #memoryKey;
  #etags = new Map();
  #inFlight = new Map();
  #signed = new Map();
  #signing;
  #saveLater;
  #speed = new SpeedMeter();
  #throttle;
  #onPageHide;

  constructor(uploader, file, options) {
    super();
    this.#uploader = uploader;
    this.#options = withDefaults({ ...uploader.options, ...definedOnly(options) });
    this.file = file;
    this.result = undefined;
    this.error = undefined;
    this.resumedFrom = undefined;
    this.#memoryKey = uploader.memory.keyFor(file);
    this.#saveLater = throttled(SAVE_INTERVAL_MS, () => this.#remember());
    this.#throttle = throttled(this.#options.progressIntervalMs, () => {
      this.dispatchEvent(new CustomEvent('progress', { detail: this.progress }));
    });
    this.#onPageHide = () => this.#saveLater.flush();
    globalThis.addEventListener?.('pagehide', this.#onPageHide);
  }

  /** `queued`, `preparing`, `uploading`, `paused`, `completing`, `done`, `failed` or `canceled`. */
  get state() {
    return this.#state;
  }

  /** The object's key once the signer has chosen it. */
  get key() {
    return this.#plan?.key;
  }

  /** `single` or `multipart` once the signer has answered. */
  get type() {
    return this.#plan?.type;
  }

  /** Bytes sent (parts the store holds, plus parts on their way), percent, speed, time left. */
  get progress() {
    const partBytes = sum([...this.#etags.keys()].map((n) => this.#partLength(n)));
    const bytesSent = this.#state === 'done' ? this.file.size : partBytes + sum([...this.#inFlight.values()]);
    const moving = this.#state === 'uploading';
    const speed = moving ? this.#speed.rate() : undefined;
    return summary(Math.min(bytesSent, this.file.size), this.file.size, speed);
  }

  /** Starts the upload, or returns the promise of the run already going. */
  start() {
    this.#done ??= this.#run();
    return this.#done;
  }

  /** Stops sending; parts already in the store are kept. */
  pause() {
    if (!ACTIVE_STATES.has(this.#state)) return;
    this.#resumed = deferred();
    this.#setState('paused');
    this.#controller?.abort('pause');
    this.#saveLater.flush(); // the parts sent so far survive a reload right after this
  }

  /** Goes on after pause(). */
  resume() {
    if (this.#state !== 'paused') return;
    this.#setState(this.#plan ? 'uploading' : 'preparing');
    this.#resumed?.resolve();
  }

  /** Stops for good and aborts the multipart upload in the store. */
  cancel() {
    if (FINAL_STATES.has(this.#state) || this.#state === 'completing') return;
    this.#setState('canceled');
    this.#controller?.abort('cancel');
    this.#resumed?.resolve();
  }

  async #run() {
    for (;;) {
      this.#controller = new AbortController();
      const { signal } = this.#controller;
      try {
        if (this.#state === 'paused') await this.#resumed.promise;
        if (this.#state === 'canceled') throw new UploadError('canceled', 'the upload was cancelled');
        const result = await this.#attempt(signal);
        this.result = result;
        this.#setState('done');
        return result;
      } catch (error) {
        if (this.#state === 'canceled') {
          await this.#abortInStore();
          this.error = new UploadError('canceled', 'the upload was cancelled');
          throw this.error;
        }
        if (signal.aborted) {
          // Paused (and perhaps resumed already): go on from what the store has.
          this.#saveLater.flush();
          continue;
        }
        this.error = error instanceof UploadError
          ? error
          : new UploadError('client_error', String(error?.message ?? error), { cause: error });
        this.#setState('failed');
        throw this.error;
      }
    }
  }

  async #attempt(signal) {
    if (this.#plan?.type === 'single' && Date.parse(this.#plan.expiresAt) - Date.now() < URL_MARGIN_MS) {
      this.#plan = undefined; // paused for so long that its URL expired: ask again
    }
    if (!this.#plan) {
      this.#setState('preparing');
      this.#plan = await this.#prepare(signal);
    }
    this.#setState('uploading');
    if (this.#plan.type === 'single') return this.#sendSingle(signal);
    await this.#sendParts(signal);
    this.#setState('completing');
    return this.#complete(signal);
  }

  // -------------------------------------------------------------------------------------
  // Preparing: resume a remembered upload, or ask the signer for a new one

  async #prepare(signal) {
    const resumed = await this.#resumeRemembered(signal);
    if (resumed) return resumed;

    const file = this.file;
    const options = this.#options;
    const request = {
      filename: file.name,
      contentType: options.contentType ?? (file.type || 'application/octet-stream'),
      size: file.size,
    };
    if (options.profile !== undefined) request.profile = options.profile;
    if (options.metadata !== undefined) request.metadata = options.metadata;
    if (options.expiresIn !== undefined) request.expiresIn = options.expiresIn;
    if (this.#wantsMultipart()) request.multipart = true;

    const plan = await this.#uploader.signer.call('POST', '/v1/uploads', { json: request, signal });
    if (plan.type === 'multipart') {
      this.#etags.clear();
      this.#plan = plan;
      this.#remember();
    }
    return plan;
  }

  #wantsMultipart() {
    const { multipart, multipartThreshold } = this.#options;
    if (this.file.size === 0) return false; // a multipart upload needs at least one byte
    if (multipart !== undefined) return multipart;
    return multipartThreshold !== undefined && this.file.size >= multipartThreshold;
  }

  /** The remembered upload of this file, with the parts the store already has. */
  async #resumeRemembered(signal) {
    const record = this.#uploader.memory.load(this.#memoryKey);
    if (!record) return undefined;
    if (record.plan?.type !== 'multipart') {
      this.#uploader.memory.remove(this.#memoryKey);
      return undefined;
    }
    const timeLeft = Date.parse(record.expiresAt) - Date.now();
    const usable = record.size === this.file.size && timeLeft > RESUME_MARGIN_MS;
    if (!usable) {
      await this.#forget(record);
      return undefined;
    }

    this.#plan = record.plan;
    const listed = await this.#listStoredParts(record.plan.token, signal);
    if (listed === 'gone') {
      await this.#forget(record);
      this.#plan = undefined;
      return undefined;
    }
    const etags = listed ?? new Map(Object.entries(record.etags ?? {}).map(([n, e]) => [Number(n), e]));
    this.#etags = etags;
    this.resumedFrom = { source: listed ? 'store' : 'memory', partsDone: etags.size };
    return record.plan;
  }

  /**
   * GET /v1/multipart/parts: the parts the store has, as a Map of part number to ETag.
   * `gone` when the upload cannot be continued (expired or foreign token, upload no longer
   * there); `undefined` when the store could not list them (then the parts this browser
   * remembers sending are used: each was answered with an ETag by the store).
   */
  async #listStoredParts(token, signal) {
    try {
      const query = new URLSearchParams({ token });
      const path = `/v1/multipart/parts?${query}`;
      const { parts } = await this.#uploader.signer.call('GET', path, { signal, attempts: 1 });
      const complete = parts.filter((p) => p.size === this.#partLength(p.partNumber));
      return new Map(complete.map((p) => [p.partNumber, p.etag]));
    } catch (error) {
      if (signal.aborted) throw error;
      if (error.status >= 500 || error.code === 'network') return undefined;
      return 'gone';
    }
  }

  async #forget(record) {
    this.#uploader.memory.remove(this.#memoryKey);
    try {
      await this.#uploader.signer.call('POST', '/v1/multipart/abort', { json: { token: record.plan.token } });
    } catch {
      // An expired or foreign token: the store drops the upload when its lifecycle says so.
    }
  }

  #remember() {
    if (this.#plan?.type !== 'multipart' || FINAL_STATES.has(this.#state)) return;
    this.#uploader.memory.save(this.#memoryKey, {
      endpoint: this.#uploader.endpoint,
      name: this.file.name,
      size: this.file.size,
      lastModified: this.file.lastModified,
      key: this.#plan.key,
      partCount: this.#plan.partCount,
      expiresAt: this.#plan.expiresAt,
      savedAt: new Date().toISOString(),
      plan: this.#plan,
      etags: Object.fromEntries(this.#etags),
    });
  }

  // -------------------------------------------------------------------------------------
  // Sending

  async #sendSingle(signal) {
    const plan = this.#plan;
    const body = this.file.slice(0, this.file.size); // a Blob without type: no implicit content-type
    // A try that ends without an answer may still have stored the file. With
    // `If-None-Match: *` signed, the next try then gets 412 because an object is there:
    // most likely this file, but the page cannot tell it from another upload to the same
    // key, so it says exactly that instead of claiming success or a plain failure.
    let answerLost = false;
    const response = await this.#withRetries(signal, 'the upload', async () => {
      const headers = headersToSend(plan.headers, body.size);
      try {
        return await this.#put(plan.url, body, headers, 0, signal);
      } catch (error) {
        if (error.status === 412 && answerLost) throw existsAfterLostAnswer(plan.key, error);
        if (error.code === 'network') answerLost = true;
        throw error;
      }
    });
    const etag = response.etag ?? undefined; // readable only where the CORS rule exposes it
    return { type: 'single', bucket: plan.bucket, key: plan.key, size: this.file.size, etag };
  }

  async #sendParts(signal) {
    if (signal.aborted) throw signal.reason;
    const missing = [];
    for (let n = 1; n <= this.#plan.partCount; n++) if (!this.#etags.has(n)) missing.push(n);

    // One failing part stops the others; pause and cancel stop them all through `signal`.
    const group = new AbortController();
    const stopGroup = () => group.abort(signal.reason);
    signal.addEventListener('abort', stopGroup, { once: true });
    let next = 0;
    const lane = async () => {
      while (next < missing.length && !group.signal.aborted) {
        const number = missing[next++];
        try {
          await this.#sendPart(number, group.signal);
        } catch (error) {
          group.abort(error);
          throw error;
        }
      }
    };
    const lanes = Array.from({ length: Math.min(this.#options.concurrency, missing.length) }, lane);
    const outcomes = await Promise.allSettled(lanes);
    signal.removeEventListener('abort', stopGroup);
    if (signal.aborted) throw signal.reason;
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw group.signal.reason ?? failed.reason;
  }

  async #sendPart(number, signal) {
    const start = (number - 1) * this.#plan.partSize;
    const body = this.file.slice(start, start + this.#partLength(number));
    const response = await this.#withRetries(signal, `part ${number}`, async () => {
      const signed = await this.#signedPart(number, signal).catch((error) => {
        error.retryable = false; // the signer's calls have had their own retries
        throw error;
      });
      const headers = headersToSend(signed.headers, body.size);
      try {
        return await this.#put(signed.url, body, headers, number, signal);
      } catch (error) {
        if (error.status === 403) {
          // An expired URL is signed again and retried; any other refusal is final.
          this.#signed.delete(number);
          error.retryable = signed.expiresAtMs - Date.now() < URL_MARGIN_MS;
        }
        throw error;
      }
    });
    this.#inFlight.delete(number);
    if (!response.etag) {
      throw new UploadError(
        'etag_unreadable',
        `The store accepted part ${number} but the browser could not read its ETag, so the ` +
          'upload cannot be completed. Fix the bucket\'s CORS rule: expose the ETag header ' +
          '("ExposeHeaders": ["ETag"]).',
      );
    }
    this.#etags.set(number, response.etag);
    this.#saveLater();
  }

  /** Runs `send` until it succeeds, retrying retryable errors with exponential backoff. */
  async #withRetries(signal, what, send) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (!error.retryable || attempt >= this.#options.maxAttempts) {
          if (error.retryable) {
            error.message = `${what} failed ${attempt} times; the last time: ${error.message}`;
          }
          throw error;
        }
        this.dispatchEvent(new CustomEvent('retry', { detail: { what, attempt, error } }));
        await sleep(error.retryAfterMs ?? backoffMs(attempt, this.#options), signal);
      }
    }
  }

  /** A signed URL for a part, signing a batch of the parts still to send when needed. */
  async #signedPart(number, signal) {
    for (;;) {
      const cached = this.#signed.get(number);
      if (cached && (!cached.used || cached.expiresAtMs - Date.now() > URL_MARGIN_MS)) {
        cached.used = true; // a fresh URL is used once even if the local clock runs ahead
        return cached;
      }
      this.#signing ??= this.#signBatch(number, signal).finally(() => {
        this.#signing = undefined;
      });
      await this.#signing;
      if (!this.#signed.has(number)) continue; // that batch was for other parts
    }
  }

  async #signBatch(first, signal) {
    const numbers = [first];
    for (let n = first + 1; n <= this.#plan.partCount && numbers.length < this.#options.signBatchSize; n++) {
      if (!this.#etags.has(n) && !this.#signed.has(n)) numbers.push(n);
    }
    const json = { token: this.#plan.token, partNumbers: numbers };
    const answer = await this.#uploader.signer.call('POST', '/v1/multipart/parts', { json, signal });
    const expiresAtMs = Date.parse(answer.expiresAt);
    for (const part of answer.parts) {
      const { partNumber, url, headers = {} } = part;
      this.#signed.set(partNumber, { url, headers, expiresAtMs, used: false });
    }
  }

  /** One PUT with XMLHttpRequest, reporting upload progress under `slot`. */
  #put(url, body, headers, slot, signal) {
    let counted = 0;
    const onProgress = (loaded) => {
      this.#speed.add(loaded - counted);
      counted = loaded;
      this.#inFlight.set(slot, loaded);
      this.#throttle();
    };
    // On success the caller moves the bytes from in flight to done, so the bar never dips.
    return sendXhr({ url, body, headers, signal, onProgress }).catch((error) => {
      this.#inFlight.delete(slot);
      this.#throttle();
      throw error;
    });
  }

  async #complete(signal) {
    const parts = [...this.#etags]
      .sort(([a], [b]) => a - b)
      .map(([partNumber, etag]) => ({ partNumber, etag }));
    const json = { token: this.#plan.token, parts };
    try {
      const done = await this.#uploader.signer.call('POST', '/v1/multipart/complete', { json, signal });
      this.#saveLater.cancel();
      this.#uploader.memory.remove(this.#memoryKey);
      return { type: 'multipart', ...done };
    } catch (error) {
      if (error.code === 'conflict') this.#uploader.memory.remove(this.#memoryKey);
      throw error;
    }
  }

  async #abortInStore() {
    this.#saveLater.cancel();
    this.#uploader.memory.remove(this.#memoryKey);
    if (this.#plan?.type !== 'multipart') return;
    try {
      await this.#uploader.signer.call('POST', '/v1/multipart/abort', { json: { token: this.#plan.token } });
    } catch {
      // The store drops an abandoned upload by its lifecycle rule; nothing more to do here.
    }
  }

  #partLength(number) {
    const plan = this.#plan;
    if (plan?.type !== 'multipart') return 0;
    return Math.max(0, Math.min(plan.partSize, this.file.size - (number - 1) * plan.partSize));
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    if (state !== 'uploading') this.#speed.reset();
    if (FINAL_STATES.has(state)) globalThis.removeEventListener?.('pagehide', this.#onPageHide);
    this.dispatchEvent(new CustomEvent('statechange', { detail: { state } }));
    this.#throttle(true);
  }
}

// ---------------------------------------------------------------------------------------
// XMLHttpRequest

function sendXhr({ url, body, headers, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const xhr = new XMLHttpRequest();
    const onAbort = () => xhr.abort();
    const settle = (outcome, value) => {
      signal.removeEventListener('abort', onAbort);
      outcome(value);
    };
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        settle(resolve, { status: xhr.status, etag: xhr.getResponseHeader('etag') });
      } else {
        settle(reject, storeError(xhr));
      }
    };
    xhr.onerror = () => settle(reject, new UploadError(
      'network',
      'the store could not be reached, or its CORS rule does not allow this page to upload',
      { retryable: true },
    ));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => settle(reject, signal.reason ?? new DOMException('aborted', 'AbortError'));
    signal.addEventListener('abort', onAbort, { once: true });
    xhr.send(body);
  });
}

function existsAfterLostAnswer(key, cause) {
  return new UploadError(
    'exists_after_lost_answer',
    `An earlier try's answer was lost and the store now holds an object at ${key}. It is ` +
      'most likely this file, stored by that try (the key has a unique part when the ' +
      "profile's key template uses {uuid}); the store refuses to overwrite it.",
    { status: 412, cause },
  );
}

function storeError(xhr) {
  const text = xhr.responseText ?? '';
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  const status = xhr.status;
  const retryable = status === 408 || status === 429 || status >= 500;
  const detail = [code, message].filter(Boolean).join(': ');
  return new UploadError('store_error', `the store answered HTTP ${status}${detail ? ` (${detail})` : ''}`, {
    status,
    retryable,
  });
}

/** The signed headers a script may set; the signed length must be the body's. */
function headersToSend(signed, bodySize) {
  const headers = {};
  for (const [name, value] of Object.entries(signed ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' && Number(value) !== bodySize) {
      throw new UploadError(
        'size_mismatch',
        `the signer signed ${value} bytes but this piece of the file has ${bodySize}; ` +
          'the file may have changed since the upload started',
      );
    }
    if (!FORBIDDEN_HEADERS.has(lower) && !lower.startsWith('proxy-') && !lower.startsWith('sec-')) {
      headers[lower] = value;
    }
  }
  return headers;
}

// ---------------------------------------------------------------------------------------
// Small things

/** Bytes sent per second over the last few seconds. */
class SpeedMeter {
  #samples = [];
  #total = 0;

  add(bytes) {
    const now = Date.now();
    this.#total += Math.max(0, bytes);
    this.#samples.push([now, this.#total]);
    while (this.#samples.length > 2 && now - this.#samples[0][0] > SPEED_WINDOW_MS) this.#samples.shift();
  }

  rate() {
    if (this.#samples.length < 2) return undefined;
    const [firstTime, firstBytes] = this.#samples[0];
    const elapsed = Date.now() - firstTime;
    if (elapsed < 250) return undefined;
    return ((this.#total - firstBytes) / elapsed) * 1000;
  }

  reset() {
    this.#samples = [];
  }
}

function summary(bytesSent, bytesTotal, speed) {
  const percent = bytesTotal === 0 ? (bytesSent === 0 ? 0 : 100) : (bytesSent / bytesTotal) * 100;
  const left = bytesTotal - bytesSent;
  const secondsLeft = speed > 0 ? left / speed : undefined;
  return { bytesSent, bytesTotal, percent, speed, secondsLeft };
}

/** Exponential backoff with jitter: about delay, 2 delay, 4 delay ... up to the cap. */
function backoffMs(attempt, { retryDelayMs, maxRetryDelayMs }) {
  const ceiling = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Calls `run` at most once per `intervalMs`, the last call of a burst included. */
function throttled(intervalMs, run) {
  let last = 0;
  let timer;
  const fire = () => {
    clearTimeout(timer);
    timer = undefined;
    last = Date.now();
    run();
  };
  const call = (now = false) => {
    const wait = last + intervalMs - Date.now();
    if (now === true || wait <= 0) fire();
    else timer ??= setTimeout(fire, wait);
  };
  call.flush = () => {
    if (timer !== undefined) fire();
  };
  call.cancel = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  return call;
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function definedOnly(options) {
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, v]) => v !== undefined));
}

// The numeric options, each with the least value that works: no parts at once, or no
// try at all, would leave an upload that never sends a byte.
const OPTION_MINIMUMS = {
  concurrency: 1,
  maxAttempts: 1,
  signBatchSize: 1,
  retryDelayMs: 0,
  maxRetryDelayMs: 0,
  progressIntervalMs: 0,
  multipartThreshold: 0,
};

function withDefaults(options) {
  const merged = { ...DEFAULTS, ...definedOnly(options) };
  for (const [name, least] of Object.entries(OPTION_MINIMUMS)) {
    const value = merged[name];
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= least)) {
      throw new RangeError(`${name} must be a whole number of at least ${least}, not ${String(value)}`);
    }
  }
  return merged;
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // a sandboxed page may not touch localStorage at all
  }
}

export { MiB };
