// A stand-in identity provider for the end-to-end tests of published-key JWTs: signing
// keys made with jose, a key server on 127.0.0.1 that publishes them as JSON Web Key Sets
// and counts how often each set is fetched, and tokens signed with those keys.
//
// Nothing here talks to the Worker; auth.test.mjs points the Worker's AUTH settings at
// the key server's URLs.

import { createServer } from 'node:http';

import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';

/**
 * A fresh signing key: `alg` is RS256 or ES256 (P-256). Returns `{ alg, kid, privateKey,
 * publicKey, jwk, pem }`, where `jwk` is the public key as published (with `kid`, `alg`
 * and `use: 'sig'`) and `pem` its SPKI PEM.
 */
export async function makeKey(alg, kid) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...await exportJWK(publicKey), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk, pem: await exportSPKI(publicKey) };
}

/** A JSON Web Key Set of the public halves of `keys` (made by makeKey) and raw `extra` JWKs. */
export function keySet(keys, extra = []) {
  return { keys: [...keys.map((key) => key.jwk), ...extra] };
}

/**
 * Starts an HTTP server on a free port of 127.0.0.1 that serves key sets. Returns
 * `{ port, url(path), publish(path, set, { cacheControl, status, delayMs }),
 * fetches(path), lastFetchAt(path), stop() }`: `publish` sets what a path answers from
 * now on (a key set, with `Cache-Control: public, max-age=300` unless told otherwise,
 * `delayMs` after the request arrives, as a distant server would), `fetches` says how
 * many GETs the path has had, and `lastFetchAt` when the last one arrived (ms). Any
 * other path answers 404.
 */
export async function startKeyServer() {
  const published = new Map();
  const seen = new Map();
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://localhost').pathname;
    const count = seen.get(path) ?? { fetches: 0, lastAt: null };
    seen.set(path, { fetches: count.fetches + 1, lastAt: Date.now() });
    const answer = published.get(path);
    if (!answer) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const headers = { 'content-type': 'application/json' };
    if (answer.cacheControl) headers['cache-control'] = answer.cacheControl;
    setTimeout(() => response.writeHead(answer.status, headers).end(answer.body), answer.delayMs);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    publish(path, set, { cacheControl = 'public, max-age=300', status = 200, delayMs = 0 } = {}) {
      const body = typeof set === 'string' ? set : JSON.stringify(set);
      published.set(path, { body, cacheControl, status, delayMs });
    },
    fetches: (path) => seen.get(path)?.fetches ?? 0,
    lastFetchAt: (path) => seen.get(path)?.lastAt ?? null,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * A compact JWT over exactly `claims`, signed with `key` (from makeKey) with its own
 * algorithm; the header has the key's `kid` unless `header` says otherwise.
 */
export function signWithKey(key, claims, header = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** Standard claims for `subject` from `issuer` for `audience`, valid five minutes. */
export function claimsFor(subject, { issuer, audience }, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: issuer, aud: audience, sub: subject, iat: now, exp: now + 300, ...overrides };
}
