// The Reports page: the benchmark reports the server renders, Pareto plots first.

import { api } from './api.js';
import { $, h, showError, clearError } from './ui.js';

let loaded = false;

export function init() {}

// Loaded on first view only: the reports are large and never change while the server runs.
export async function show() {
  if (loaded) return;
  const err = $('#reports-error');
  try {
    const res = await api('/reports/index.json');
    render((res && res.reports) || []);
    loaded = true;
    clearError(err);
  } catch (e) {
    showError(err, e);
  }
}

// The page's CSP refuses inline style attributes (the markdown renderer aligns table cells with them),
// so alignment becomes a class and any other inline style is dropped before the HTML is parsed.
function withoutInlineStyles(html) {
  return String(html || '').replace(/\sstyle\s*=\s*("([^"]*)"|'([^']*)')/gi, (m, q, dq, sq) => {
    const a = /text-align\s*:\s*(left|right|center)/i.exec(dq ?? sq ?? '');
    return a ? ` class="align-${a[1].toLowerCase()}"` : '';
  });
}

// body parses a report's trusted HTML, points relative image paths at the report's folder and lets
// wide tables scroll on their own.
function body(report) {
  const tpl = document.createElement('template');
  tpl.innerHTML = withoutInlineStyles(report.html);
  for (const img of tpl.content.querySelectorAll('img')) {
    const src = img.getAttribute('src') || '';
    if (src && !/^([a-z]+:|\/)/i.test(src)) img.setAttribute('src', `/reports/${report.id}/${src.replace(/^\.\//, '')}`);
    img.setAttribute('loading', 'lazy');
  }
  for (const table of tpl.content.querySelectorAll('table')) {
    const wrap = h('div', { class: 'table-wrap' });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  return h('div', { class: 'report-body' }, tpl.content);
}

function render(reports) {
  const root = $('#reports');
  if (!reports.length) {
    root.replaceChildren(h('p', { class: 'hint' }, 'No reports on this server.'));
    return;
  }
  const plots = [];
  for (const r of reports) {
    for (const src of r.images || []) {
      if (/pareto/i.test(src)) plots.push({ src, title: r.title });
    }
  }
  const figures = plots.map((p) => {
    const name = p.src.split('/').pop().replace(/\.\w+$/, '').replace(/[-_]/g, ' ');
    return h('figure', { class: 'plot card' },
      h('img', { src: p.src, alt: `${name} (${p.title})`, loading: 'lazy' }),
      h('figcaption', {}, `${p.title}: ${name}`));
  });
  const groups = new Map();
  for (const r of reports) {
    const g = r.group || 'Other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(r);
  }
  root.replaceChildren(
    plots.length ? h('div', { class: 'plots' }, ...figures) : null,
    ...[...groups].map(([group, list]) => h('div', { class: 'report-group' },
      h('h2', {}, group),
      ...list.map((r) => h('details', { class: 'report card', id: `report-${r.id}` },
        h('summary', {}, r.title || r.id),
        body(r))))));
}
