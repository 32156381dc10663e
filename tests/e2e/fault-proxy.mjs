// A programmable HTTP proxy on 127.0.0.1 between the Worker (and test clients) and the
// test SeaweedFS, that breaks requests on purpose: it drops connections, delays answers,
// cuts request bodies short and answers with S3's error codes, per rule, for the next N
// matching requests or all of them. Everything else passes through unchanged, the Host
// header included, since SigV4 signatures cover it.
//
// It records every request it saw (its S3 action and what it did to it), so tests can
// count how many times the Worker or a client tried.
//
//   const proxy = useFaultProxy(seaweed);            // before useWorker({ faultProxy })
//   proxy.inject({ action: 'create', fault: 'error', status: 503, code: 'SlowDown' });
//   ... call the Worker ...
//   proxy.tries('create');                           // 2: one refused, one passed
//
// Faults (`fault`):
// - `error`: answer `status` with an S3 XML error body of `code`, without forwarding.
// - `error-200`: answer 200 with an XML error body of `code` (InternalError unless
//   given), without forwarding: what S3 may do when a CompleteMultipartUpload that has
//   begun fails.
// - `drop`: close the connection before forwarding anything; the store sees nothing.
// - `drop-after`: forward, read the store's whole answer, then close the connection
//   without answering: the store acted, its answer is lost.
// - `delay`: forward, and hold the store's answer `delayMs` before passing it on.
// - `stall-body`: forward, pass on the answer's headers and the first half of its body,
//   then send nothing more until the caller hangs up.
// - `cut-body`: forward the request with only its first `bytes` body bytes (half unless
//   given), then close both connections: a body lost halfway.

import http from 'node:http';
import { after, before } from 'node:test';

/** The S3 action of a request, from its method and query. */
export function actionOf(method, url) {
  const query = new URL(url, 'http://proxy').searchParams;
  switch (method) {
    case 'POST':
      if (query.has('uploads')) return 'create';
      if (query.has('uploadId')) return 'complete';
      return 'post';
    case 'PUT':
      return query.has('partNumber') ? 'part' : 'put';
    case 'DELETE':
      return query.has('uploadId') ? 'abort' : 'delete';
    case 'GET':
      if (query.has('uploadId')) return 'list-parts';
      return query.has('uploads') ? 'list-uploads' : 'get';
    case 'HEAD':
      return 'head';
    default:
      return method.toLowerCase();
  }
}

const FAULTS = new Set([
  'error', 'error-200', 'drop', 'drop-after', 'delay', 'stall-body', 'cut-body',
]);

// Our own wording for each code; the codes and statuses are S3's.
const ERROR_MESSAGES = {
  InternalError: 'The fault proxy made this internal error; try again.',
  ServiceUnavailable: 'The fault proxy says the service cannot take the request now.',
  SlowDown: 'The fault proxy asks you to send requests more slowly.',
  NoSuchUpload: 'The fault proxy says this upload does not exist (any more).',
};

/**
 * Registers before/after hooks that start a fault proxy in front of `seaweed` (the
 * object useSeaweedFS() returned) and stop it after the file. Pass it to
 * useWorker({ seaweed, faultProxy }): the Worker then has a bucket `seaweed-faults` whose
 * endpoint is the proxy, and a profile `faults` that writes there.
 */
export function useFaultProxy(seaweed) {
  const proxy = {};
  const started = Promise.withResolvers();
  started.promise.catch(() => {}); // the hook below reports the failure
  proxy.ready = started.promise;
  before(async () => {
    try {
      Object.assign(proxy, await startFaultProxy({ upstream: () => seaweed.port }));
      started.resolve();
    } catch (error) {
      started.reject(error);
      throw error;
    }
  });
  after(async () => {
    await proxy.stop?.();
  });
  return proxy;
}

/**
 * Starts a proxy on a free loopback port that forwards to 127.0.0.1:`upstream()` (a
 * function, so the store may start later). Resolves to `{ port, endpoint, inject(rule),
 * clear(), seen(), tries(action), stop() }`.
 */
export async function startFaultProxy({ upstream }) {
  let rules = [];
  let requests = [];
  const sockets = new Set();

  const server = http.createServer((request, response) => {
    const action = actionOf(request.method, request.url);
    const rule = takeRule(rules, action);
    const record = { action, method: request.method, fault: rule?.fault ?? 'none' };
    requests.push(record);
    handle({ request, response, rule, record, port: upstream() });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    /**
     * Adds a rule: `action` (from actionOf), `fault` (see the file's header), `times`
     * (how many matching requests it breaks, 1 unless given; Infinity for all), and the
     * fault's own fields: `status` and `code`, `delayMs`, `bytes`.
     */
    inject(rule) {
      if (!FAULTS.has(rule.fault)) throw new Error(`unknown fault ${rule.fault}`);
      rules.push({ times: 1, ...rule });
    },
    /** Forgets the rules and the record: the proxy passes everything again. */
    clear() {
      rules = [];
      requests = [];
    },
    /** Every request since the last clear(): `{ action, method, fault, status }`. */
    seen: () => requests.map((r) => ({ ...r })),
    /** How many requests of this action arrived since the last clear(). */
    tries: (action) => requests.filter((r) => r.action === action).length,
    stop: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The first rule for `action` with uses left, using one up. */
function takeRule(rules, action) {
  const rule = rules.find((r) => r.action === action && r.times > 0);
  if (rule) rule.times -= 1;
  return rule;
}

function handle({ request, response, rule, record, port }) {
  switch (rule?.fault) {
    case 'error':
      return answerError(request, response, record, rule.status, rule.code);
    case 'error-200':
      return answerError(request, response, record, 200, rule.code ?? 'InternalError');
    case 'drop':
      record.status = 'dropped';
      return request.socket.destroy();
    default:
      return forward({ request, response, rule, record, port });
  }
}

/** Answers with S3's XML error body, after reading the request's body. */
function answerError(request, response, record, status, code) {
  record.status = status;
  request.resume();
  request.once('end', () => {
    const body = '<?xml version="1.0" encoding="UTF-8"?>\n'
      + `<Error><Code>${code}</Code><Message>${ERROR_MESSAGES[code] ?? code}</Message>`
      + `<Resource>${escapeXml(new URL(request.url, 'http://proxy').pathname)}</Resource>`
      + '<RequestId>fault-proxy</RequestId></Error>';
    response.writeHead(status, {
      'content-type': 'application/xml',
      'content-length': Buffer.byteLength(body),
      ...(status === 503 && { 'retry-after': '1' }),
    });
    response.end(body);
  });
}

/** Sends the request on to the store, and its answer back, as the rule says. */
function forward({ request, response, rule, record, port }) {
  const upstream = http.request({
    host: '127.0.0.1',
    port,
    method: request.method,
    path: request.url,
    headers: request.headers, // Host included: the signature covers it
  });
  upstream.once('error', () => {
    record.status ??= 'upstream-error';
    request.socket.destroy();
  });

  if (rule?.fault === 'cut-body') {
    cutBody(request, upstream, rule, record);
    return;
  }
  request.pipe(upstream);

  upstream.once('response', async (answer) => {
    record.status = answer.statusCode;
    if (rule?.fault === 'drop-after') {
      answer.resume();
      answer.once('end', () => {
        record.status = `${answer.statusCode}, then dropped`;
        request.socket.destroy();
      });
      return;
    }
    if (rule?.fault === 'stall-body') return stallBody(answer, response, record);
    if (rule?.fault === 'delay') await sleep(rule.delayMs);
    if (request.socket.destroyed) return answer.resume(); // the caller gave up waiting
    response.writeHead(answer.statusCode, answer.rawHeaders);
    answer.pipe(response);
  });
}

/** Passes on the headers and half the body of `answer`, then nothing more. */
function stallBody(answer, response, record) {
  const chunks = [];
  answer.on('data', (chunk) => chunks.push(chunk));
  answer.once('end', () => {
    const body = Buffer.concat(chunks);
    record.status = `${answer.statusCode}, body stalled`;
    response.writeHead(answer.statusCode, answer.rawHeaders);
    response.write(body.subarray(0, Math.floor(body.length / 2)));
  });
}

/** Passes on the first `rule.bytes` bytes of the body (half by default), then cuts. */
function cutBody(request, upstream, rule, record) {
  const length = Number(request.headers['content-length'] ?? 0);
  let left = rule.bytes ?? Math.floor(length / 2);
  record.status = 'cut';
  const cut = () => {
    request.socket.destroy();
    upstream.destroy();
  };
  request.on('data', (chunk) => {
    if (left <= 0) return;
    const piece = chunk.subarray(0, left);
    left -= piece.length;
    upstream.write(piece);
    if (left <= 0) setTimeout(cut, 50); // let the written bytes reach the store
  });
  request.once('end', cut);
}

function escapeXml(text) {
  return text.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
