// Small DOM helpers shared by the pages: element builder, error and toast rendering, busy marking,
// the in-page confirm, file reading and the drop-zone file picker.

import { ApiError } from './api.js';

export const $ = (sel, root = document) => root.querySelector(sel);

// report shows an error nobody caught where the user can see it; the console stays clean.
export function report(err) {
  toast(`Something went wrong: ${(err && err.message) || err}`);
}

// on attaches a handler whose failures (sync or async) are reported rather than left uncaught.
export function on(el, type, fn) {
  el.addEventListener(type, (ev) => {
    try {
      const r = fn(ev);
      if (r && typeof r.catch === 'function') r.catch(report);
    } catch (err) {
      report(err);
    }
  });
}

// h builds an element: props are attributes, except class, text, dataset and on<event> handlers.
// There is deliberately no style prop: inline style attributes break the page's CSP.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') on(el, k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

export function option(value, text, selected = false) {
  const o = h('option', { value }, text);
  o.selected = selected;
  return o;
}

// showError renders "message [code]" into an alert element next to the control that caused it.
export function showError(el, err) {
  if (!err) return clearError(el);
  const message = typeof err === 'string' ? err : err.message || String(err);
  const code = err instanceof ApiError && err.code ? h('code', { class: 'err-code' }, err.code) : null;
  el.replaceChildren(h('span', { class: 'err-msg' }, message));
  if (code) el.append(' ', code);
  el.hidden = false;
}

export function clearError(el) {
  el.replaceChildren();
  el.hidden = true;
}

let toastTimer = 0;
export function toast(text) {
  const el = $('#toast');
  if (!el) return;
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 4500);
}

// busy marks a page section data-busy while fn runs; a counter keeps overlapping requests honest.
const busyCount = new WeakMap();
export async function busy(section, fn) {
  busyCount.set(section, (busyCount.get(section) || 0) + 1);
  section.dataset.busy = 'true';
  try {
    return await fn();
  } finally {
    const n = busyCount.get(section) - 1;
    busyCount.set(section, n);
    if (n <= 0) delete section.dataset.busy;
  }
}

// confirmAction asks in a <dialog> (window.confirm blocks tests and looks foreign) and resolves a boolean.
export function confirmAction(text, yesLabel = 'Delete') {
  const dialog = $('#confirm-dialog');
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = yesLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.removeEventListener('close', onClose);
      yes.onclick = null;
      no.onclick = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onClose = () => done(false); // Escape
    const yes = $('#confirm-yes');
    const no = $('#confirm-no');
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    no.focus();
  });
}

// fileToBase64 answers the file's bytes as base64, without the data: URL prefix.
export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const s = String(r.result);
      resolve(s.slice(s.indexOf(',') + 1));
    };
    r.onerror = () => reject(new ApiError(0, 'read_failed', `Could not read ${file.name}.`));
    r.readAsDataURL(file);
  });
}

export function fmtBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1).replace(/\.0$/, '')} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} B`;
}

export function fmtMs(ms) {
  if (ms == null || Number.isNaN(+ms)) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function fmtDate(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s || '') : d.toLocaleString();
}

const TYPES = ['image/png', 'image/jpeg'];
// Some drags carry no MIME type; the extension is the next best hint.
const isImage = (f) => TYPES.includes(f.type) || (!f.type && /\.(png|jpe?g)$/i.test(f.name));

// filePicker wires a drop zone (<label> around an <input type=file>) to a pending list with thumbnails.
// limits: {max, maxBytes, maxTotal} (0 or missing: none). onError gets a message or null.
export function filePicker({ zone, input, previews, limits = {}, onError = () => {}, onChange = () => {} }) {
  let items = [];
  const render = () => {
    previews.replaceChildren(...items.map((it, i) => h('li', { class: 'preview' },
      h('img', { src: it.url, alt: it.file.name, width: 64, height: 64 }),
      h('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${it.file.name}`, onclick: () => remove(i) }, '×'))));
    onChange(items.length);
  };
  const remove = (i) => {
    URL.revokeObjectURL(items[i].url);
    items.splice(i, 1);
    onError(null);
    render();
  };
  const add = (files) => {
    const problems = [];
    let total = items.reduce((s, it) => s + it.file.size, 0);
    for (const file of files) {
      if (!isImage(file)) {
        problems.push(`${file.name} is not a PNG or JPEG image.`);
      } else if (limits.maxBytes && file.size > limits.maxBytes) {
        problems.push(`${file.name} is ${fmtBytes(file.size)}; each image may be at most ${fmtBytes(limits.maxBytes)}.`);
      } else if (limits.max && items.length >= limits.max) {
        problems.push(`At most ${limits.max} images at once; ${file.name} was not added.`);
      } else if (limits.maxTotal && total + file.size > limits.maxTotal) {
        problems.push(`Together the images may be at most ${fmtBytes(limits.maxTotal)}; ${file.name} was not added.`);
      } else {
        items.push({ file, url: URL.createObjectURL(file) });
        total += file.size;
      }
    }
    onError(problems.length ? problems.join(' ') : null);
    render();
  };
  on(input, 'change', () => {
    add([...input.files]);
    input.value = ''; // so choosing the same file again fires change again
  });
  on(zone, 'dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('dragging');
  });
  on(zone, 'dragleave', () => zone.classList.remove('dragging'));
  on(zone, 'drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('dragging');
    add([...(ev.dataTransfer ? ev.dataTransfer.files : [])]);
  });
  return {
    files: () => items.map((it) => it.file),
    clear() {
      items.forEach((it) => URL.revokeObjectURL(it.url));
      items = [];
      render();
    },
  };
}
