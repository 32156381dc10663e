// Types of edge-presigner.js, the browser client of the edge-presigner signer.

/** One mebibyte, 1,048,576 bytes. */
export declare const MiB: number;

/** The states an upload goes through, in order; the last three are final. */
export type UploadStateName =
  | 'queued'
  | 'preparing'
  | 'uploading'
  | 'paused'
  | 'completing'
  | 'done'
  | 'failed'
  | 'canceled';

export declare const UploadState: Readonly<{ [S in UploadStateName]: S }>;

/** Where an upload stands, in bytes and time. */
export interface Progress {
  /** Bytes the store holds, plus bytes of requests under way. */
  bytesSent: number;
  /** The file's size (for the uploader: all files that were neither cancelled nor failed). */
  bytesTotal: number;
  /** 0 to 100. */
  percent: number;
  /** Bytes per second over the last few seconds; undefined while not sending. */
  speed?: number;
  /** At the current speed; undefined while not sending. */
  secondsLeft?: number;
}

/** What the store ended up with. */
export interface UploadResult {
  type: 'single' | 'multipart';
  bucket: string;
  key: string;
  size: number;
  /** The object's ETag; for a single upload only when the store's CORS rule exposes it. */
  etag?: string;
}

/**
 * What the client asks of the signer for one file. The numeric options are whole numbers;
 * `concurrency`, `maxAttempts` and `signBatchSize` at least 1, the others at least 0
 * (`Uploader` and `add()` throw a RangeError naming the option otherwise).
 */
export interface UploadOptions {
  /** The signer's upload profile; the signer uses `default` when absent. */
  profile?: string;
  /** Sent as the object's type; default: the file's type, else application/octet-stream. */
  contentType?: string;
  /** User metadata stored with the object (the profile decides which keys are allowed). */
  metadata?: Record<string, string>;
  /** Validity of the signed URLs in seconds, within the profile's bounds. */
  expiresIn?: number;
  /**
   * true: always in parts (but a file of 0 bytes, which a multipart upload cannot hold, goes
   * in one PUT); false: never ask for parts (the profile may still decide so).
   */
  multipart?: boolean;
  /** Ask for parts from this many bytes on (when `multipart` is not given). */
  multipartThreshold?: number;
  /** Parts of one file sent at once. Default 4. */
  concurrency?: number;
  /** Tries of one part (or single PUT) before the upload fails. Default 5. */
  maxAttempts?: number;
  /** Wait before the second try; it doubles for each later try, with jitter. Default 1000. */
  retryDelayMs?: number;
  /** The longest wait between tries. Default 30000. */
  maxRetryDelayMs?: number;
  /** Part URLs asked for in one call to the signer. Default 50. */
  signBatchSize?: number;
  /** The shortest time between two `progress` events. Default 100. */
  progressIntervalMs?: number;
}

export interface UploaderOptions extends UploadOptions {
  /** The signer's base URL; default: the page's origin. */
  endpoint?: string | URL;
  /**
   * Returns the bearer credential for the signer (a JWT or an API key). Called before each
   * call to the signer; with `{refresh: true}` after the signer refused the last one.
   */
  getToken(options: { refresh?: boolean }): string | Promise<string>;
  /** Where unfinished multipart uploads are remembered; default localStorage, null: nowhere. */
  storage?: Storage | null;
  /** The fetch used to call the signer; default globalThis.fetch. */
  fetch?: typeof fetch;
}

/** A multipart upload an earlier page left unfinished. */
export interface UnfinishedUpload {
  name: string;
  size: number;
  lastModified: number;
  key: string;
  partCount: number;
  partsDone: number;
  expiresAt: string;
  savedAt: string;
}

/** A presigned GET, from `POST /v1/downloads`. */
export interface DownloadUrl {
  url: string;
  expiresAt: string;
}

export interface DownloadOptions {
  /** The name the browser should save the file under. */
  filename?: string;
  disposition?: 'attachment' | 'inline';
  expiresIn?: number;
  profile?: string;
}

/**
 * An error of the signer, the store or the client. `code` is the signer's error code
 * (`unauthorized`, `forbidden`, `too_large`, ...) or one of the client's.
 */
export declare class UploadError extends Error {
  readonly name: 'UploadError';
  readonly code:
    | 'network'
    | 'store_error'
    | 'etag_unreadable'
    /** A single PUT was sent again after its answer was lost, and the store refused it
     * (412) because an object is now at the key: most likely this file. */
    | 'exists_after_lost_answer'
    | 'size_mismatch'
    | 'canceled'
    | 'client_error'
    /** The signer answered an error without the JSON error body (a proxy's page, say). */
    | 'http_error'
    | (string & {});
  /** The HTTP status, when there was an answer. */
  readonly status?: number;
  /** The request field at fault, when the signer names one. */
  readonly field?: string;
  /** Whether trying again later may succeed. */
  retryable: boolean;
  readonly retryAfterMs?: number;
}

export interface UploadEventMap {
  progress: CustomEvent<Progress>;
  statechange: CustomEvent<{ state: UploadStateName }>;
  retry: CustomEvent<{ what: string; attempt: number; error: UploadError }>;
}

/** One file on its way to the store. Created by `Uploader.add`. */
export declare class Upload extends EventTarget {
  private constructor();
  readonly file: File;
  readonly state: UploadStateName;
  /** The object's key, once the signer has chosen it. */
  readonly key: string | undefined;
  readonly type: 'single' | 'multipart' | undefined;
  readonly progress: Progress;
  readonly result: UploadResult | undefined;
  readonly error: UploadError | undefined;
  /** Set when a multipart upload was taken up again from an earlier page. */
  readonly resumedFrom: { source: 'store' | 'memory'; partsDone: number } | undefined;
  /** Starts the upload, or returns the promise of the run already going. */
  start(): Promise<UploadResult>;
  /** Stops sending; the parts already stored are kept. */
  pause(): void;
  /** Goes on after pause(). */
  resume(): void;
  /**
   * Stops for good and aborts the multipart upload in the store. Does nothing once the
   * upload is `completing` (the store is putting the parts together) or has ended.
   */
  cancel(): void;
  addEventListener<K extends keyof UploadEventMap>(
    type: K,
    listener: (event: UploadEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

/** Uploads files through one signer; `progress` events carry the progress of all of them. */
export declare class Uploader extends EventTarget {
  constructor(options: UploaderOptions);
  readonly endpoint: string;
  /** Every upload added so far. */
  readonly uploads: Upload[];
  /** All uploads that were neither cancelled nor failed, added up. */
  readonly progress: Progress;
  /** Creates an upload and starts it, unless `start: false`. */
  add(file: File, options?: UploadOptions & { start?: boolean }): Upload;
  /** Multipart uploads remembered from an earlier page; pick the same file to resume one. */
  unfinished(): UnfinishedUpload[];
  /** Forgets a remembered upload and aborts it in the store. */
  discard(upload: Pick<UnfinishedUpload, 'name' | 'size' | 'lastModified'>): Promise<void>;
  /** A presigned GET for an object this credential may read. */
  downloadUrl(key: string, options?: DownloadOptions): Promise<DownloadUrl>;
  addEventListener(
    type: 'progress',
    listener: (event: CustomEvent<Progress>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}
