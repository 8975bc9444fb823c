// The Classify page: top labels for dropped images, from the built-in classes or a collection's model.

import { api } from './api.js';
import { $, h, on, option, busy, showError, clearError, filePicker, fileToBase64, fmtMs } from './ui.js';

let section;
let picker;
let shownUrls = []; // object URLs of the thumbnails in the current results

export function init(catalog) {
  section = $('#page-classify');
  const up = catalog.upload || {};
  picker = filePicker({
    zone: $('#classify-drop'), input: $('#classify-files'), previews: $('#classify-previews'),
    limits: { maxBytes: up.max_image_bytes, maxTotal: up.max_total_bytes },
    onError: (msg) => showError($('#classify-error'), msg),
  });
  on($('#classify-form'), 'submit', submit);
}

export async function show() {
  const select = $('#classify-collection');
  try {
    const res = await api('/v1/collections');
    const built = ((res && res.collections) || []).filter((c) => c.model);
    const prev = select.value;
    select.replaceChildren(option('', 'Built-in classes'),
      ...built.map((c) => option(c.id, `${c.name} (${c.model.method})`, c.id === prev)));
    clearError($('#classify-error'));
  } catch (e) {
    if (e.status !== 401) showError($('#classify-error'), e);
  }
}

async function submit(ev) {
  ev.preventDefault();
  const err = $('#classify-error');
  clearError(err);
  const files = picker.files();
  if (!files.length) return showError(err, 'Add at least one image to classify.');
  const button = $('#classify-submit');
  button.disabled = true;
  try {
    await busy(section, async () => {
      const images = await Promise.all(files.map(fileToBase64));
      const body = { images, top_k: 3 };
      const collection = $('#classify-collection').value;
      if (collection) body.collection = collection;
      const res = await api('/v1/classify', { method: 'POST', json: body });
      // The chosen files stay, so they can be classified again against another collection.
      render(res, files);
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  } finally {
    button.disabled = false;
  }
}

function render(res, files) {
  shownUrls.forEach((u) => URL.revokeObjectURL(u));
  const urls = files.map((f) => URL.createObjectURL(f));
  shownUrls = urls;
  const t = res.timings || {};
  const from = res.collection ? `collection ${$('#classify-collection').selectedOptions[0]?.textContent || res.collection}` : 'built-in classes';
  $('#classify-meta').textContent = `Method ${res.method || '–'} · ${from} · features ${fmtMs(t.features_ms)} · scoring ${fmtMs(t.scoring_ms)}`;
  $('#classify-results').replaceChildren(...(res.predictions || []).map((p, i) => {
    const name = files[i] ? files[i].name : `image ${i + 1}`;
    return h('article', { class: 'classify-result card' },
      h('img', { src: urls[i], alt: name, width: 96, height: 96 }),
      h('div', { class: 'labels' },
        h('h3', {}, name),
        ...(p.top || []).map(labelRow)));
  }));
}

function labelRow(s) {
  const score = s.probability ?? s.score ?? 0;
  const pct = `${(score * 100).toFixed(1)}%`;
  const fill = h('div', { class: 'fill' });
  fill.style.width = `${Math.max(0, Math.min(100, score * 100))}%`; // CSSOM, allowed by the CSP
  return h('div', { class: 'label-score' },
    h('span', { class: 'label' }, s.label),
    h('div', { class: 'bar', role: 'presentation' }, fill),
    h('span', { class: 'pct' }, pct));
}
