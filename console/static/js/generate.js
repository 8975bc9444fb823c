// The Generate page: a prompt builder over the catalog's grammar, sampling settings, live job
// progress, and the results with their per-step timing chart.

import { api, isJob, followJob, jobError } from './api.js';
import { $, h, on, option, busy, showError, clearError, toast, fmtMs } from './ui.js';

let catalog;
let section;
let runningJob = null; // id of the job being followed, for Cancel
let running = false;

const randomSeed = () => Math.floor(Math.random() * 1000000);

export function init(cat) {
  catalog = cat;
  section = $('#page-generate');
  const scene = catalog.scene || { classes: [], positions: [] };
  $('#b-class').replaceChildren(...scene.classes.map((c) => option(c, c)));
  $('#b-position').replaceChildren(...scene.positions.map((p) => option(p.name, p.phrase)));
  $('#prompt-hint').textContent = scene.grammar
    ? `Grammar: ${scene.grammar}. Example: “${scene.example}”.` : '';
  for (const id of ['#b-size', '#b-class', '#b-position', '#b-mirrored', '#b-inverted']) {
    on($(id), 'change', writePrompt);
  }
  writePrompt();

  $('#gen-seed').value = randomSeed();
  on($('#gen-seed-new'), 'click', () => { $('#gen-seed').value = randomSeed(); });
  const count = $('#gen-count');
  count.max = catalog.max_images || 16;
  count.value = Math.min(4, catalog.max_images || 4);

  const presets = catalog.presets || [];
  $('#gen-preset').replaceChildren(...presets.map((p) => option(p.name,
    p.note ? `${p.label} — ${p.note}` : p.label, p.name === catalog.default_preset)));
  $('#gen-policy').replaceChildren(...(catalog.policies || []).map((p) => option(p.name, p.name, p.name === 'none')));
  on($('#gen-preset'), 'change', applyPreset);
  on($('#gen-policy'), 'change', () => renderParams());
  renderParams();

  on($('#gen-form'), 'submit', submit);
  on($('#gen-cancel'), 'click', cancel);
}

export async function show() {
  await loadSubjects();
}

// canonical is the prompt the builder describes, spelled the way the grammar expects.
function canonical() {
  const size = $('#b-size').value;
  let p = `a ${size} ${$('#b-mirrored').checked ? 'mirrored ' : ''}${$('#b-class').value}`;
  if (size === 'small') {
    const pos = (catalog.scene.positions || []).find((x) => x.name === $('#b-position').value);
    if (pos) p += ` ${pos.phrase}`;
  }
  if ($('#b-inverted').checked) p += ', inverted';
  return p;
}

function writePrompt() {
  $('#b-position').disabled = $('#b-size').value === 'large'; // large items fill the canvas
  $('#prompt').value = canonical();
  clearError($('#prompt-error'));
}

function applyPreset() {
  const preset = (catalog.presets || []).find((p) => p.name === $('#gen-preset').value);
  if (!preset || !preset.cache) return;
  const policy = $('#gen-policy');
  if ([...policy.options].some((o) => o.value === preset.cache.name)) policy.value = preset.cache.name;
  renderParams(preset.cache.params || {});
}

function renderParams(values = {}) {
  const policy = (catalog.policies || []).find((p) => p.name === $('#gen-policy').value);
  $('#gen-policy-help').textContent = policy ? policy.help || '' : '';
  $('#gen-params').replaceChildren(...(policy ? policy.params || [] : []).map((p) => {
    const id = `gen-param-${p.name}`;
    const v = values[p.name] ?? p.default;
    return h('div', { class: 'field' },
      h('label', { for: id, title: p.help || null }, p.name),
      h('input', { id, type: 'number', min: p.min, max: p.max, step: p.integer ? 1 : 'any', value: v, dataset: { param: p.name } }));
  }));
}

async function loadSubjects() {
  const select = $('#gen-subject');
  const err = $('#gen-subject-error');
  try {
    const res = await api('/v1/subjects?status=ready&limit=200');
    const prev = select.value;
    const ready = (res && res.subjects || []).filter((s) => s.status === 'ready');
    select.replaceChildren(option('', 'No subject'),
      ...ready.map((s) => option(s.id, s.class ? `${s.name} (${s.class})` : s.name, s.id === prev)));
    clearError(err);
  } catch (e) {
    if (e.status !== 401) showError(err, e);
  }
}

function requestBody() {
  const preset = (catalog.presets || []).find((p) => p.name === $('#gen-preset').value);
  const cache = { name: $('#gen-policy').value || 'none' };
  const params = {};
  for (const input of $('#gen-params').querySelectorAll('input[data-param]')) {
    if (input.value !== '') params[input.dataset.param] = Number(input.value);
  }
  if (Object.keys(params).length) cache.params = params;
  const body = {
    prompt: $('#prompt').value.trim(),
    n: Number($('#gen-count').value) || 1,
    seed: Number($('#gen-seed').value) || 0,
    cache,
  };
  if (preset) body.steps = preset.steps;
  const subject = $('#gen-subject').value;
  if (subject) body.subject_id = subject;
  if (catalog.jobs) body.async = true;
  return body;
}

function setRunning(on, indeterminate = false) {
  running = on;
  $('#gen-submit').disabled = on;
  $('#gen-run').hidden = !on;
  $('#gen-cancel').hidden = !on || indeterminate;
  const bar = $('#gen-progress');
  if (on) {
    bar.removeAttribute('value'); // indeterminate until the first step arrives
    $('#gen-progress-text').textContent = indeterminate ? 'Generating…' : 'Submitting…';
  }
}

function onProgress(job) {
  const bar = $('#gen-progress');
  const text = $('#gen-progress-text');
  const p = job.progress || {};
  if (job.state === 'queued') {
    text.textContent = 'Queued…';
  } else if (job.state === 'running' && p.steps) {
    bar.max = p.steps;
    bar.value = p.step || 0;
    text.textContent = `step ${p.step || 0} / ${p.steps}`;
  } else if (job.state === 'running') {
    text.textContent = 'Running…';
  }
}

// A grammar complaint belongs under the prompt; a bad count or policy value belongs by the button.
function showGenError(e) {
  const msg = String(e.message || '');
  const aboutSettings = !/prompt/i.test(msg) && /^(n|steps|seed) must|polic|cache|interval/i.test(msg);
  if (e.code === 'invalid_argument' && !aboutSettings) showError($('#prompt-error'), e);
  else showError($('#gen-error'), e);
}

async function submit(ev) {
  ev.preventDefault();
  if (running) return;
  clearError($('#prompt-error'));
  clearError($('#gen-error'));
  const body = requestBody();
  if (!body.prompt) {
    showError($('#prompt-error'), 'Write a prompt, or build one with the controls above.');
    return;
  }
  setRunning(true, !catalog.jobs);
  try {
    await busy(section, async () => {
      let res = await api('/v1/generate', { method: 'POST', json: body });
      if (isJob(res)) {
        runningJob = res.id;
        let job = await followJob(res, onProgress);
        runningJob = null;
        if (job.state === 'canceled') {
          toast('Generation canceled.');
          return;
        }
        if (job.state !== 'succeeded') throw jobError(job);
        if (!job.result) job = await api(`/v1/jobs/${encodeURIComponent(job.id)}`);
        res = job.result;
      }
      render(res);
    });
  } catch (e) {
    if (e.status !== 401) showGenError(e);
  } finally {
    runningJob = null;
    setRunning(false);
  }
}

async function cancel() {
  if (!runningJob) return;
  $('#gen-cancel').disabled = true;
  $('#gen-progress-text').textContent = 'Canceling…';
  try {
    await api(`/v1/jobs/${encodeURIComponent(runningJob)}`, { method: 'DELETE' });
  } catch (e) {
    showError($('#gen-error'), e);
  } finally {
    $('#gen-cancel').disabled = false;
  }
}

function render(res) {
  const t = res.timings || {};
  const steps = (res.cache && res.cache.steps) || (t.step_ms || []).length;
  $('#gen-summary').replaceChildren(
    h('q', { class: 'prompt' }, res.prompt),
    ` · ${steps} steps · ${fmtMs(t.total_ms)} total`);
  $('#gen-images').replaceChildren(...(res.images || []).map((img) => {
    const src = img.png_base64 ? `data:image/png;base64,${img.png_base64}` : img.url;
    const n = img.index + 1;
    return h('figure', { class: 'gen-image' },
      h('img', { src, alt: `image ${n}: ${res.prompt}`, width: 128, height: 128 }),
      h('figcaption', {}, h('span', {}, `#${n}`),
        h('a', { class: 'download', download: `cachet-${res.id}-${img.index}.png`, href: src }, 'Download')));
  }));
  renderChart(t.step_ms || []);
  const c = res.cache || {};
  const pct = c.compute_fraction != null ? `${(c.compute_fraction * 100).toFixed(1)}%` : '–';
  $('#gen-cache').textContent = `Policy ${c.policy || 'none'} · computed ${c.computed_units ?? '–'}, ` +
    `reused ${c.reused_units ?? '–'}, forecast ${c.forecast_units ?? '–'} units · compute ${pct} · ` +
    `queue ${fmtMs(t.queue_ms)} · sampling ${fmtMs(t.sampling_ms)} · total ${fmtMs(t.total_ms)}`;
  $('#gen-output').hidden = false;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

// renderChart draws one bar per sampler step; the viewBox stretches to the card's width.
function renderChart(stepMs) {
  const box = $('#gen-chart');
  if (!stepMs.length) {
    box.replaceChildren(h('p', { class: 'hint' }, 'No per-step timings.'));
    return;
  }
  const max = Math.max(...stepMs, 0.001);
  const min = Math.min(...stepMs);
  const mean = stepMs.reduce((a, b) => a + b, 0) / stepMs.length;
  const w = 10;
  const H = 100;
  const bars = stepMs.map((ms, i) => {
    const bh = Math.max(1, (ms / max) * (H - 2));
    return svg('rect', { x: i * w + 1, y: H - bh, width: w - 2, height: bh, class: 'bar' },
      svg('title', {}, `step ${i + 1}: ${ms.toFixed(1)} ms`));
  });
  const summary = `Per-step time for ${stepMs.length} steps: mean ${mean.toFixed(1)} ms, ` +
    `min ${min.toFixed(1)} ms, max ${max.toFixed(1)} ms`;
  box.replaceChildren(
    svg('svg', { viewBox: `0 0 ${stepMs.length * w} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': summary }, ...bars),
    h('p', { class: 'hint' }, summary));
}
