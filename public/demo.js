// The demo page: gets a credential, then uploads each file dropped or picked with the
// client in edge-presigner.js, one row per file with its progress, speed, time left,
// pause/resume/cancel and its result.
//
// Credential: under `wrangler dev` on a loopback host with DEV_LOGIN=on, POST
// /v1/dev/token hands out a one-hour token; anywhere else that route answers 404 and the
// page asks for a bearer token instead. The token is kept in localStorage, so that after
// a reload the same subject owns the unfinished uploads and can resume them.
//
// Query parameters, for trying things out (the browser tests use them):
//   ?multipartAbove=BYTES   files of this size or more go in parts (default 8 MiB)
//   ?concurrency=N          parts of one file sent at once (default 4)
//   ?retryDelayMs=MS        first wait before a failed part is tried again (default 1000)

import { MiB, Uploader } from './edge-presigner.js';

const CREDENTIAL_KEY = 'edge-presigner-demo:credential';
// A token obtained this recently is not replaced when a call is refused: several uploads
// refused at once must not each log in again (each login is a new subject).
const FRESH_TOKEN_MS = 10_000;
// A token is renewed when it has less than this left.
const TOKEN_MARGIN_MS = 60_000;

const $ = (selector, root = document) => root.querySelector(selector);

const settings = readSettings(new URLSearchParams(location.search));
const uploader = new Uploader({
  endpoint: location.origin,
  getToken,
  multipartThreshold: settings.multipartAbove,
  concurrency: settings.concurrency,
  retryDelayMs: settings.retryDelayMs,
});

// ---------------------------------------------------------------------------------------
// The credential

let credentialRequest; // one login at a time, however many uploads ask

function getToken({ refresh = false } = {}) {
  credentialRequest ??= obtainCredential(refresh).finally(() => {
    credentialRequest = undefined;
  });
  return credentialRequest.then((credential) => credential.token);
}

async function obtainCredential(refresh) {
  const saved = loadCredential();
  const recent = saved && Date.now() - saved.obtainedAt < FRESH_TOKEN_MS;
  const usable = saved && !expiresSoon(saved);
  if (usable && (!refresh || recent)) {
    showCredential(saved);
    return saved;
  }

  const why = saved ? 'The token was refused or has expired; paste another one.' : undefined;
  const credential = (await devLogin()) ?? (await askForToken(why));
  localStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
  showCredential(credential);
  return credential;
}

/** POST /v1/dev/token; `undefined` where the development login does not exist (404). */
async function devLogin() {
  const response = await fetch('/v1/dev/token', { method: 'POST' });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`the development login answered HTTP ${response.status}`);
  const { token, subject, expiresAt } = await response.json();
  return { token, subject, expiresAt, source: 'dev', obtainedAt: Date.now() };
}

/** Shows the token field and resolves with what the user pastes there. */
function askForToken(message) {
  const form = $('#token-form');
  form.hidden = false;
  setStatus(message ?? 'No development login here: paste a bearer token to upload.');
  $('#token-input').focus();
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const token = $('#token-input').value.trim();
      if (!token) return;
      form.hidden = true;
      form.reset();
      const claims = jwtClaims(token);
      resolve({
        token,
        subject: claims?.sub,
        expiresAt: claims?.exp ? new Date(claims.exp * 1000).toISOString() : undefined,
        source: 'pasted',
        obtainedAt: Date.now(),
      });
    };
  });
}

function loadCredential() {
  try {
    return JSON.parse(localStorage.getItem(CREDENTIAL_KEY) ?? 'null') ?? undefined;
  } catch {
    return undefined;
  }
}

function expiresSoon(credential) {
  if (credential.expiresAt === undefined) return false;
  return Date.parse(credential.expiresAt) - Date.now() < TOKEN_MARGIN_MS;
}

/** The claims of a JWT, read without checking it (only to show the subject and expiry). */
function jwtClaims(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload));
  } catch {
    return undefined; // an API key, or not a JWT
  }
}

function showCredential(credential) {
  const who = credential.subject ? `as ${credential.subject}` : 'with a pasted token';
  const how = credential.source === 'dev' ? ' (development login)' : '';
  const until = credential.expiresAt ? `, until ${new Date(credential.expiresAt).toLocaleTimeString()}` : '';
  setStatus(`Uploading ${who}${how}${until}.`);
}

function setStatus(text) {
  $('#credential-status').textContent = text;
}

// ---------------------------------------------------------------------------------------
// Files in

function addFiles(files) {
  for (const file of files) {
    const upload = uploader.add(file);
    $('#uploads').append(uploadRow(upload));
  }
  $('#overall').hidden = false;
  renderUnfinished();
}

function wirePicker() {
  const input = $('#file-input');
  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = ''; // so that picking the same file again is a change
  });
  const zone = $('#drop-zone');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    addFiles([...event.dataTransfer.files]);
  });
}

// ---------------------------------------------------------------------------------------
// One row per upload

function uploadRow(upload) {
  const row = $('#upload-template').content.firstElementChild.cloneNode(true);
  row.dataset.name = upload.file.name;
  $('.upload-name', row).textContent = upload.file.name;
  $('.upload-size', row).textContent = formatBytes(upload.file.size);
  row.addEventListener('click', (event) => {
    const action = event.target.closest('button')?.dataset.action;
    if (action) upload[action]();
  });
  upload.addEventListener('progress', () => renderProgress(row, upload));
  upload.addEventListener('statechange', () => renderState(row, upload));
  renderState(row, upload);
  return row;
}

function renderState(row, upload) {
  const state = upload.state;
  row.dataset.state = state;
  if (upload.key) row.dataset.key = upload.key;
  if (upload.resumedFrom) {
    row.dataset.resumedFrom = upload.resumedFrom.source;
    row.dataset.resumedParts = upload.resumedFrom.partsDone;
  }
  $('.upload-state', row).textContent = stateLabel(upload);
  $('[data-action=pause]', row).hidden = !['queued', 'preparing', 'uploading'].includes(state);
  $('[data-action=resume]', row).hidden = state !== 'paused';
  $('[data-action=cancel]', row).hidden = ['completing', 'done', 'failed', 'canceled'].includes(state);
  renderProgress(row, upload);
  if (state === 'done') showResult(row, upload);
  if (state === 'failed') setResult(row, `Failed: ${upload.error.message}`);
  if (state === 'canceled') setResult(row, 'Cancelled: the parts already sent were discarded.');
  renderUnfinished();
}

function renderProgress(row, upload) {
  const { percent, speed, secondsLeft } = upload.progress;
  const shown = upload.state === 'done' ? 100 : Math.min(Math.floor(percent), 99);
  $('.upload-bar', row).value = shown;
  $('.upload-percent', row).textContent = `${shown} %`;
  $('.upload-speed', row).textContent = speed ? `${formatBytes(speed)}/s` : '';
  $('.upload-eta', row).textContent = secondsLeft !== undefined ? `${formatSeconds(secondsLeft)} left` : '';
  renderOverall();
}

function stateLabel(upload) {
  if (upload.state === 'uploading' && upload.resumedFrom) {
    return `uploading (resumed: ${upload.resumedFrom.partsDone} parts were already stored)`;
  }
  return upload.state;
}

async function showResult(row, upload) {
  const { key, size } = upload.result;
  const line = $('.upload-result', row);
  line.replaceChildren('Stored as ', code(key), ` (${formatBytes(size)})`);
  const link = await downloadLink(upload);
  if (link) line.append(' · ', link);
}

/** A link that downloads the stored object (POST /v1/downloads), or nothing if refused. */
async function downloadLink(upload) {
  try {
    const { url } = await uploader.downloadUrl(upload.result.key, { filename: upload.file.name });
    const link = document.createElement('a');
    link.href = url;
    link.textContent = 'Download';
    link.className = 'download';
    return link;
  } catch {
    return undefined; // this credential may not read it, or the route is not deployed
  }
}

function setResult(row, text) {
  $('.upload-result', row).textContent = text;
}

// ---------------------------------------------------------------------------------------
// All uploads, and the ones an earlier page left unfinished

function renderOverall() {
  const { percent, bytesSent, bytesTotal, speed, secondsLeft } = uploader.progress;
  const finished = uploader.uploads.every((u) => ['done', 'failed', 'canceled'].includes(u.state));
  const shown = finished && bytesSent === bytesTotal ? 100 : Math.min(Math.floor(percent), 99);
  $('#overall-bar').value = shown;
  const failed = uploader.uploads.filter((u) => u.state === 'failed').length;
  const parts = [
    `${uploader.uploads.length} ${uploader.uploads.length === 1 ? 'file' : 'files'}`,
    ...(failed ? [`${failed} failed`] : []),
    `${formatBytes(bytesSent)} of ${formatBytes(bytesTotal)}`,
    `${shown} %`,
  ];
  if (speed) parts.push(`${formatBytes(speed)}/s`);
  if (secondsLeft !== undefined) parts.push(`${formatSeconds(secondsLeft)} left`);
  $('#overall-stats').textContent = parts.join(' · ');
}

function renderUnfinished() {
  const here = new Set(uploader.uploads.map((u) => fingerprint(u.file)));
  const entries = uploader.unfinished().filter((entry) => !here.has(fingerprint(entry)));
  const list = $('#unfinished-list');
  list.replaceChildren(...entries.map(unfinishedItem));
  $('#unfinished').hidden = entries.length === 0;
}

function unfinishedItem(entry) {
  const item = document.createElement('li');
  item.dataset.name = entry.name;
  const discard = document.createElement('button');
  discard.type = 'button';
  discard.textContent = 'Discard';
  discard.addEventListener('click', async () => {
    discard.disabled = true;
    await uploader.discard(entry);
    renderUnfinished();
  });
  const done = `${entry.partsDone} of ${entry.partCount} parts sent`;
  item.append(`${entry.name} (${formatBytes(entry.size)}): ${done} `, discard);
  return item;
}

function fingerprint({ name, size, lastModified }) {
  return JSON.stringify([name, size, lastModified]);
}

// ---------------------------------------------------------------------------------------
// Small things

function readSettings(params) {
  const number = (name, fallback) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
  };
  return {
    multipartAbove: number('multipartAbove', 8 * MiB),
    concurrency: Math.max(1, number('concurrency', 4)),
    retryDelayMs: number('retryDelayMs', 1000),
  };
}

function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(seconds) {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.ceil(seconds % 60)} s`;
}

function code(text) {
  const element = document.createElement('code');
  element.textContent = text;
  return element;
}

// ---------------------------------------------------------------------------------------

wirePicker();
renderUnfinished();
getToken().catch((error) => setStatus(`No credential: ${error.message}`));
