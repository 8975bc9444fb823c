// Start-up (health, key, catalog), the key dialog and the hash router.

import { api, getKey, setKey, clearKey, onUnauthorized } from './api.js';
import { $, on, busy, showError, clearError, report } from './ui.js';
import * as generate from './generate.js';
import * as subjects from './subjects.js';
import * as classify from './classify.js';
import * as collections from './collections.js';
import * as reports from './reports.js';

const pages = { generate, subjects, classify, collections, reports };
let authMode = 'unknown'; // "keys" or "off" from /healthz; unknown when an older server omits it
let ready = false;

// Last-resort nets: anything that escapes a handler is shown, not logged as uncaught.
window.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  report(ev.reason);
});

function updateKeyState() {
  $('#key-state').hidden = !(authMode === 'keys' || getKey());
}

function openKeyDialog(err) {
  const dialog = $('#key-dialog');
  if (err) showError($('#key-error'), err);
  else clearError($('#key-error'));
  if (!dialog.open) dialog.showModal();
  $('#api-key').focus();
}

// loadCatalog answers whether the catalog came; a refused key reopens the dialog (via onUnauthorized).
async function loadCatalog() {
  let catalog;
  try {
    catalog = await api('/v1/catalog');
  } catch (err) {
    // A 401 already reopened the dialog with its message; other failures show where the user looks.
    if (err.status !== 401) showError($('#key-dialog').open ? $('#key-error') : $('#app-error'), err);
    return false;
  }
  clearError($('#app-error'));
  const dialog = $('#key-dialog');
  if (dialog.open) dialog.close();
  updateKeyState();
  if (!ready) {
    for (const page of Object.values(pages)) page.init(catalog);
    ready = true;
    $('#app-loading').hidden = true;
    $('#app').dataset.ready = 'true';
  }
  route();
  return true;
}

function wireKeyDialog() {
  onUnauthorized((err) => {
    clearKey();
    updateKeyState();
    openKeyDialog(err);
  });
  // Without a key the app cannot work: Escape must not dismiss the dialog then.
  on($('#key-dialog'), 'cancel', (ev) => {
    if (!getKey()) ev.preventDefault();
  });
  on($('#key-form'), 'submit', async (ev) => {
    ev.preventDefault();
    const key = $('#api-key').value.trim();
    if (!key) {
      showError($('#key-error'), 'Enter an API key.');
      return;
    }
    setKey(key);
    clearError($('#key-error'));
    const save = $('#key-save');
    save.disabled = true;
    try {
      if (await loadCatalog()) $('#api-key').value = '';
    } finally {
      save.disabled = false;
    }
  });
  on($('#key-change'), 'click', () => {
    clearKey();
    updateKeyState();
    openKeyDialog();
  });
}

function currentPage() {
  const m = /^#\/(\w+)/.exec(location.hash);
  return m && pages[m[1]] ? m[1] : 'generate';
}

function route() {
  if (!ready) return;
  const name = currentPage();
  for (const key of Object.keys(pages)) {
    $(`#page-${key}`).hidden = key !== name;
    const link = $(`#nav-${key}`);
    if (key === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const page = pages[name];
  if (page.show) busy($(`#page-${name}`), () => page.show()).catch(report);
}

async function start() {
  wireKeyDialog();
  window.addEventListener('hashchange', route);
  try {
    const health = await api('/healthz');
    if (health && (health.auth === 'keys' || health.auth === 'off')) authMode = health.auth;
  } catch (err) {
    showError($('#app-error'), err);
  }
  updateKeyState();
  // Ask for the key before touching a protected endpoint, so a fresh tab never earns a 401.
  if (authMode === 'keys' && !getKey()) {
    openKeyDialog();
    return;
  }
  await loadCatalog();
}

start().catch(report);
