// The one way the console talks to the server: a fetch wrapper that adds the API key and turns every
// failure into an ApiError, and a job follower (Server-Sent Events read over fetch, polling as fallback).

const KEY = 'cachet.key';
const DONE = new Set(['succeeded', 'failed', 'canceled']);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0 when the server was not reached
    this.code = code;
  }
}

// sessionStorage can throw (privacy modes); a missing key is the safe answer then.
export function getKey() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}
export function setKey(key) {
  try { sessionStorage.setItem(KEY, key); } catch { /* the key then lasts until reload */ }
}
export function clearKey() {
  try { sessionStorage.removeItem(KEY); } catch { /* nothing stored */ }
}

let unauthorized = () => {};
// onUnauthorized registers what happens when the server refuses the key (the app shows the key dialog).
export function onUnauthorized(fn) { unauthorized = fn; }

// Only /v1 is protected; public paths (healthz, reports) never see the key.
function headers(path, extra) {
  const h = new Headers(extra);
  const key = getKey();
  if (key && path.startsWith('/v1/')) h.set('Authorization', `Bearer ${key}`);
  return h;
}

async function errorFrom(res, path) {
  let code = `http_${res.status}`;
  let message = res.statusText || `The server answered ${res.status}.`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch { /* not a JSON error body: keep the status line */ }
  const err = new ApiError(res.status, code, message);
  if (res.status === 401 && path.startsWith('/v1/')) unauthorized(err);
  return err;
}

async function request(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached; check the connection and try again.');
  }
  if (!res.ok) throw await errorFrom(res, path);
  return res;
}

// api sends one request and answers its parsed JSON (null for an empty body), or a Blob with as:'blob'.
export async function api(path, { method = 'GET', json, form, as = 'json' } = {}) {
  const init = { method, headers: headers(path) };
  if (json !== undefined) {
    init.headers.set('Content-Type', 'application/json');
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form; // the browser writes the multipart boundary itself
  }
  const res = await request(path, init);
  if (as === 'blob') return res.blob();
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server answered with something that is not JSON.');
  }
}

// A 202 answer is a Job; Subjects have "status" and Collections "labels", never "state".
export function isJob(x) {
  return !!x && typeof x.state === 'string' && typeof x.id === 'string';
}

export function jobError(job) {
  const e = job.error || {};
  return new ApiError(0, e.code || job.state, e.message || `The job ended ${job.state}.`);
}

// followJob calls onProgress with every state of the job and resolves with its final state.
export async function followJob(job, onProgress = () => {}) {
  onProgress(job);
  if (DONE.has(job.state)) return job;
  let final = null;
  try {
    final = await streamJob(job.id, onProgress);
  } catch (err) {
    // A refused key or a vanished job will not improve by polling; a broken stream may.
    if (err instanceof ApiError && (err.status === 401 || err.status === 404)) throw err;
  }
  return final || pollJob(job.id, onProgress);
}

// EventSource cannot send the Authorization header, so the stream is read and parsed here.
async function streamJob(id, onProgress) {
  const path = `/v1/jobs/${encodeURIComponent(id)}/events`;
  const res = await request(path, { headers: headers(path, { Accept: 'text/event-stream' }) });
  if (!res.body) return null;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let data = [];
  let final = null;
  const dispatch = () => {
    if (!data.length) return;
    const text = data.join('\n');
    data = [];
    let job;
    try { job = JSON.parse(text); } catch { return; }
    onProgress(job);
    if (DONE.has(job.state)) final = job;
  };
  try {
    while (!final) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      // A lone trailing \r may be the first half of \r\n: leave it with the unfinished line.
      const lines = buf.split(/\r\n|\r(?!$)|\n/);
      buf = lines.pop();
      for (const line of lines) {
        if (line === '') dispatch();
        else if (!line.startsWith(':')) { // ":" lines are keep-alive comments
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let v = i < 0 ? '' : line.slice(i + 1);
          if (v.startsWith(' ')) v = v.slice(1);
          if (field === 'data') data.push(v);
        }
        if (final) break;
      }
    }
    // The server closes the stream after the final event; reading on (in the background) to that end
    // keeps the request from showing as aborted. A server that lingers is cut off after a moment.
    if (final) drain(reader);
  } catch (err) {
    if (!final) throw err;
  }
  return final;
}

async function drain(reader) {
  const timer = setTimeout(() => reader.cancel().catch(() => {}), 2000);
  try {
    while (!(await reader.read()).done) { /* keep-alives after the end */ }
  } catch { /* the stream broke after the end: nothing is lost */ } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollJob(id, onProgress) {
  let failures = 0;
  for (;;) {
    await sleep(500);
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
      failures = 0;
      onProgress(job);
      if (DONE.has(job.state)) return job;
    } catch (err) {
      // Ride out a short network blip; anything the server said is final.
      if (!(err instanceof ApiError) || err.status !== 0 || ++failures > 10) throw err;
    }
  }
}
