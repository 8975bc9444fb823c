// The Collections page: label sets with sample images, and building their cache models.

import { api, isJob, followJob, jobError } from './api.js';
import { $, h, on, option, busy, showError, clearError, toast, filePicker, fileToBase64, fmtDate } from './ui.js';

let catalog;
let section;
let picker;
let current = null; // the collection open in #collection-detail
let building = false;

export function init(cat) {
  catalog = cat;
  section = $('#page-collections');
  const classes = (catalog.scene && catalog.scene.classes) || [];
  $('#collection-hint').textContent = `Separate labels with commas. The built-in classes are: ${classes.join(', ')}.`;
  const up = catalog.upload || {};
  picker = filePicker({
    zone: $('#sample-drop'), input: $('#sample-files'), previews: $('#sample-previews'),
    limits: { maxBytes: up.max_image_bytes, maxTotal: up.max_total_bytes },
    onError: (msg) => showError($('#sample-error'), msg),
  });
  on($('#collection-form'), 'submit', create);
  on($('#sample-add'), 'click', addSamples);
  on($('#build-submit'), 'click', build);
}

export async function show() {
  await loadList();
}

async function loadList() {
  const err = $('#collection-list-error');
  try {
    const res = await api('/v1/collections');
    const list = (res && res.collections) || [];
    $('#collection-list').replaceChildren(...list.map(item));
    $('#collection-empty').hidden = list.length > 0;
    clearError(err);
    const fresh = current && list.find((c) => c.id === current.id);
    if (fresh) renderDetail(fresh);
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  }
}

function modelText(m) {
  if (!m) return 'not built';
  return `${m.method} · ${m.entries} entries`;
}

function item(c) {
  return h('li', { class: 'collection', dataset: { id: c.id } },
    h('button', { type: 'button', class: 'open', 'aria-controls': 'collection-detail', onclick: () => open(c.id) }, c.name),
    h('span', { class: 'labels' }, (c.labels || []).join(', ')),
    h('span', { class: 'counts' }, `${c.samples || 0} samples, ${c.labelled || 0} labelled`),
    h('span', { class: c.model ? 'badge status-ready' : 'badge' }, modelText(c.model)));
}

async function open(id) {
  const err = $('#collection-list-error');
  clearError(err);
  try {
    await busy(section, async () => {
      const c = await api(`/v1/collections/${encodeURIComponent(id)}`);
      if (!current || current.id !== c.id) {
        picker.clear();
        clearError($('#sample-error'));
        clearError($('#build-error'));
      }
      renderDetail(c);
      $('#collection-detail').scrollIntoView({ block: 'start', behavior: 'smooth' });
      $('#collection-title').focus({ preventScroll: true });
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  }
}

function renderDetail(c) {
  current = c;
  $('#collection-detail').hidden = false;
  $('#collection-title').textContent = c.name;
  $('#collection-info').textContent = `Labels: ${(c.labels || []).join(', ') || 'none'} · ` +
    `${c.samples || 0} samples, ${c.labelled || 0} labelled`;
  const select = $('#sample-label');
  const prev = select.value;
  select.replaceChildren(option('', '(unlabelled)'), ...(c.labels || []).map((l) => option(l, l, l === prev)));
  const m = c.model;
  $('#model-summary').replaceChildren(m
    ? h('dl', { class: 'facts' },
      h('dt', {}, 'Method'), h('dd', {}, m.method),
      h('dt', {}, 'Entries'), h('dd', {}, String(m.entries)),
      h('dt', {}, 'Per class'), h('dd', {}, String(m.per_class)),
      h('dt', {}, 'Built at'), h('dd', {}, fmtDate(m.built_at)),
      h('dt', {}, 'Build time'), h('dd', {}, `${(m.build_seconds || 0).toFixed(2)} s`))
    : h('p', { class: 'hint' }, 'No model yet'));
}

async function create(ev) {
  ev.preventDefault();
  const err = $('#collection-error');
  clearError(err);
  const name = $('#collection-name').value.trim();
  const labels = $('#collection-labels').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!name) return showError(err, 'Give the collection a name.');
  if (!labels.length) return showError(err, 'List at least one label, separated by commas.');
  try {
    await busy(section, async () => {
      const c = await api('/v1/collections', { method: 'POST', json: { name, labels } });
      $('#collection-name').value = '';
      $('#collection-labels').value = '';
      toast(`Collection “${c.name}” created.`);
      picker.clear();
      renderDetail(c);
      await loadList();
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  }
}

async function addSamples() {
  const err = $('#sample-error');
  clearError(err);
  if (!current) return;
  const files = picker.files();
  if (!files.length) return showError(err, 'Add at least one sample image.');
  const label = $('#sample-label').value;
  const button = $('#sample-add');
  button.disabled = true;
  try {
    await busy(section, async () => {
      const images = await Promise.all(files.map(fileToBase64));
      const samples = images.map((image) => (label ? { image, label } : { image }));
      const c = await api(`/v1/collections/${encodeURIComponent(current.id)}/samples`, { method: 'POST', json: { samples } });
      picker.clear();
      toast(`Added ${samples.length} sample${samples.length === 1 ? '' : 's'}${label ? ` labelled “${label}”` : ''}.`);
      if (c && c.id) renderDetail(c);
      await loadList();
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  } finally {
    button.disabled = false;
  }
}

function buildProgress(job) {
  const bar = $('#build-progress');
  const text = $('#build-progress-text');
  const p = job.progress || {};
  if (p.steps) {
    bar.max = p.steps;
    bar.value = p.step || 0;
    text.textContent = `${job.state} · ${p.step || 0} / ${p.steps}`;
  } else {
    text.textContent = `${job.state}…`;
  }
}

async function build() {
  const err = $('#build-error');
  clearError(err);
  if (!current || building) return;
  const id = current.id;
  const body = { method: $('#build-method').value };
  if (catalog.jobs) body.async = true;
  building = true;
  $('#build-submit').disabled = true;
  $('#build-run').hidden = false;
  $('#build-progress').removeAttribute('value');
  $('#build-progress-text').textContent = 'Building…';
  try {
    await busy(section, async () => {
      const res = await api(`/v1/collections/${encodeURIComponent(id)}/build`, { method: 'POST', json: body });
      if (isJob(res)) {
        const job = await followJob(res, buildProgress);
        if (job.state !== 'succeeded') throw jobError(job);
      }
      const c = await api(`/v1/collections/${encodeURIComponent(id)}`);
      toast(`Built the model of “${c.name}”.`);
      if (current && current.id === id) renderDetail(c);
      await loadList();
    });
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  } finally {
    building = false;
    $('#build-submit').disabled = false;
    $('#build-run').hidden = true;
  }
}
