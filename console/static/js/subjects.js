// The Subjects page: upload reference images of one item, and list, retry, compare and delete subjects.

import { api, isJob } from './api.js';
import { $, h, on, option, busy, showError, clearError, toast, confirmAction, filePicker, fmtBytes } from './ui.js';

let catalog;
let section;
let picker;
let pollTimer = 0;
let loading = null;
const thumbs = new Map(); // "id/n" → Promise of an object URL, so re-renders do not refetch
const lastStatus = new Map(); // id → status seen, to announce when processing ends

export function init(cat) {
  catalog = cat;
  section = $('#page-subjects');
  const classes = (catalog.scene && catalog.scene.classes) || [];
  $('#subject-class').append(...classes.map((c) => option(c, c)));
  const up = catalog.upload || {};
  $('#subject-limits').textContent = `PNG or JPEG, 1–${up.max_images || 8} images, ` +
    `up to ${fmtBytes(up.max_image_bytes || 0)} each and ${fmtBytes(up.max_total_bytes || 0)} together.`;
  picker = filePicker({
    zone: $('#subject-drop'), input: $('#subject-files'), previews: $('#subject-previews'),
    limits: { max: up.max_images, maxBytes: up.max_image_bytes, maxTotal: up.max_total_bytes },
    onError: (msg) => showError($('#subject-error'), msg),
  });
  on($('#subject-form'), 'submit', upload);
}

export async function show() {
  await load();
}

// load fetches the list; concurrent callers share one request.
function load() {
  if (!loading) loading = refresh().finally(() => { loading = null; });
  return loading;
}

async function refresh() {
  const err = $('#subject-list-error');
  let subjects;
  try {
    const res = await api('/v1/subjects?limit=200');
    subjects = (res && res.subjects) || [];
    clearError(err);
  } catch (e) {
    if (e.status !== 401) showError(err, e);
    return;
  }
  subjects.sort((a, b) => String(b.created_at || '').localeCompare(String(a.created_at || '')));
  for (const s of subjects) {
    const before = lastStatus.get(s.id);
    if (before === 'pending' && s.status !== 'pending') {
      toast(s.status === 'ready' ? `Subject “${s.name}” is ready.` : `Subject “${s.name}” failed.`);
    }
    lastStatus.set(s.id, s.status);
  }
  render(subjects);
  // While anything is still being processed, look again in a second.
  clearTimeout(pollTimer);
  if (subjects.some((s) => s.status === 'pending')) pollTimer = setTimeout(() => { load(); }, 1000);
}

// render keeps list items whose subject did not change, so open "similar" panels and thumbnails survive.
function render(subjects) {
  const list = $('#subject-list');
  const old = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const items = subjects.map((s) => {
    const li = old.get(s.id);
    const stamp = `${s.status}|${s.updated_at || ''}|${(s.refs || []).length}`;
    if (li && li.dataset.stamp === stamp) return li;
    const fresh = item(s);
    fresh.dataset.stamp = stamp;
    return fresh;
  });
  list.replaceChildren(...items);
  $('#subject-empty').hidden = subjects.length > 0;
}

function item(s) {
  const errBox = h('div', { class: 'error', role: 'alert', hidden: true });
  const similarBox = h('div', { class: 'similar-out', hidden: true });
  const refs = h('div', { class: 'refs' });
  for (const ref of s.refs || []) refs.append(thumb(s, ref));
  const status = h('span', { class: `badge status-${s.status}` }, s.status);
  return h('li', { class: 'subject', dataset: { id: s.id, status: s.status } },
    h('div', { class: 'subject-head' },
      h('strong', { class: 'name' }, s.name),
      h('span', { class: 'class' }, s.class || 'unknown class'),
      status),
    s.status === 'failed' ? h('p', { class: 'reason' },
      h('span', {}, s.error || 'Processing failed.'), ' ',
      h('button', { type: 'button', class: 'retry', onclick: () => retry(s, errBox) }, 'Retry')) : null,
    refs,
    h('div', { class: 'subject-actions' },
      h('button', { type: 'button', class: 'similar', disabled: s.status !== 'ready',
        onclick: () => similar(s, similarBox, errBox) }, 'Similar'),
      h('button', { type: 'button', class: 'delete', onclick: () => remove(s, errBox) }, 'Delete')),
    similarBox,
    errBox);
}

// thumb loads a reference image with the key (an <img src> could not send it) as a blob URL.
function thumb(s, ref) {
  const img = h('img', { class: 'thumb', alt: `reference ${ref.n + 1} of ${s.name}`, width: 64, height: 64 });
  const key = `${s.id}/${ref.n}`;
  if (!thumbs.has(key)) {
    thumbs.set(key, api(`/v1/subjects/${encodeURIComponent(s.id)}/refs/${ref.n}`, { as: 'blob' })
      .then((blob) => URL.createObjectURL(blob))
      .catch(() => { thumbs.delete(key); return null; }));
  }
  thumbs.get(key).then((url) => {
    if (url) img.src = url;
    else img.classList.add('missing');
  });
  return img;
}

function forget(id) {
  for (const [key, p] of thumbs) {
    if (key.startsWith(`${id}/`)) {
      p.then((url) => url && URL.revokeObjectURL(url));
      thumbs.delete(key);
    }
  }
  lastStatus.delete(id);
}

async function upload(ev) {
  ev.preventDefault();
  const err = $('#subject-error');
  clearError(err);
  const name = $('#subject-name').value.trim();
  const files = picker.files();
  if (!name) return showError(err, 'Give the subject a name.');
  if (!files.length) return showError(err, 'Add at least one reference image.');
  const form = new FormData();
  form.append('name', name);
  if ($('#subject-class').value) form.append('class', $('#subject-class').value);
  if (catalog.jobs) form.append('async', 'true');
  for (const f of files) form.append('images', f, f.name);
  const button = $('#subject-upload');
  button.disabled = true;
  try {
    await busy(section, async () => {
      const res = await api('/v1/subjects', { method: 'POST', form });
      picker.clear();
      $('#subject-name').value = '';
      $('#subject-class').value = '';
      // A 202 Job means processing continues: the list shows it pending and polls until it is done.
      if (isJob(res)) lastStatus.set(res.target || '', 'pending');
      toast(isJob(res) ? `Uploaded “${name}”; processing…` : `Subject “${name}” created.`);
      await load();
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  } finally {
    button.disabled = false;
  }
}

async function retry(s, errBox) {
  clearError(errBox);
  try {
    await busy(section, async () => {
      await api(`/v1/subjects/${encodeURIComponent(s.id)}/retry${catalog.jobs ? '?async=true' : ''}`, { method: 'POST' });
      lastStatus.set(s.id, 'pending');
      await load();
    });
  } catch (e) {
    if (e.status !== 401) showError(errBox, e);
  }
}

async function similar(s, box, errBox) {
  clearError(errBox);
  try {
    await busy(section, async () => {
      const res = await api(`/v1/subjects/${encodeURIComponent(s.id)}/similar?k=5`);
      const list = ((res && res.subjects) || []).slice(0, 5);
      box.replaceChildren(
        h('h3', {}, `Similar to ${s.name}`),
        list.length ? h('ol', { class: 'similar-list' }, ...list.map((o) => h('li', {},
          h('span', {}, o.class ? `${o.name} (${o.class})` : o.name), ' ',
          h('span', { class: 'pct' }, `${(o.similarity * 100).toFixed(1)}%`))))
          : h('p', { class: 'hint' }, 'No other ready subjects to compare with.'));
      box.hidden = false;
    });
  } catch (e) {
    if (e.status !== 401) showError(errBox, e);
  }
}

async function remove(s, errBox) {
  clearError(errBox);
  if (!(await confirmAction(`Delete subject “${s.name}” and its images?`))) return;
  try {
    await busy(section, async () => {
      await api(`/v1/subjects/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
      forget(s.id);
      toast(`Deleted “${s.name}”.`);
      await load();
    });
  } catch (e) {
    if (e.status !== 401) showError(errBox, e);
  }
}
