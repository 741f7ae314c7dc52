// Periscope's web UI: wires the connection, the filter chips, the flow table,
// the service map, the detail pane and history mode together.
//
// Live flows arrive in batches; they are parsed on arrival but reach the DOM
// only in the next animation frame, so 5,000 flows/s cost a few renders per
// second of visible rows, never one per flow.

import { Conn } from './conn.js';
import { Chips, chipsFromURL, writeURL } from './chips.js';
import { FlowTable } from './table.js';
import { ServiceMap } from './map.js';
import { Detail } from './detail.js';
import { toRow } from './flow.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CAP = Math.max(100, Number(params.get('rows')) || 10000);
const REPLAY = Math.min(CAP, 1000); // stored flows shown on (re)subscribe
const token = params.get('token') || '';

const state = {
  mode: 'live',
  paused: false,
  held: [],        // rows received while paused, newest kept
  heldCount: 0,
  pending: [],     // rows waiting for the next frame
  received: 0,
  skipped: 0,
  history: false,  // the server has a history source
  rateWindow: [],
};

// perf is read back by the browser benchmarks.
const perf = window.periscope = {
  refresh: () => refresh(),
  state, cap: CAP,
  batches: 0, lastBatchMs: 0, batchMs: [], renderMs: [], lastFlows: 0,
};

const table = new FlowTable($('viewport'), $('spacer'), {
  cap: CAP,
  onSelect: (row) => detail.show(row),
  onRender: (ms) => { perf.renderMs.push(ms); if (perf.renderMs.length > 500) perf.renderMs.shift(); },
});
const map = new ServiceMap($('map'), $('map-summary'));
const detail = new Detail($('detail'), $('detail-fields'), $('detail-json'), $('detail-close'), () => table.select(null));
const chips = new Chips($('chips'), $('filter-input'), (next, problem) => {
  if (problem) return showError(problem);
  showError('');
  writeURL(next);
  refresh();
});

const conn = new Conn({
  token,
  onFlows: (m, t0) => {
    if (state.mode !== 'live') return;
    const rows = m.flows.map(toRow);
    state.received += rows.length;
    state.skipped = Math.max(state.skipped, m.skipped || 0);
    state.rateWindow.push([performance.now(), rows.length]);
    if (state.paused) {
      hold(rows);
    } else {
      for (const r of rows) state.pending.push(r);
      scheduleFlush(t0, rows.length);
    }
    counters();
  },
  onStatus: (s) => {
    state.skipped = Math.max(state.skipped, s.skipped || 0);
    state.history = !!s.history;
    $('hist-source').textContent = state.history ? 'source: long-term history' : 'source: live ring';
    counters();
  },
  onError: (msg) => {
    showError(msg);
    const m = /filter "([^"]*)"/.exec(msg);
    if (m) chips.markBad(m[1]);
  },
  onState: (s) => {
    $('conn-dot').className = `dot ${s}`;
    $('conn-text').textContent = state.mode === 'history' ? 'history' : s;
  },
});

// Batched DOM updates: everything that arrived since the last frame goes in
// at once.
let flushScheduled = false;
let flushStart = 0, flushFlows = 0;
function scheduleFlush(t0, n) {
  if (!flushScheduled) { flushStart = t0; flushFlows = 0; }
  flushFlows += n;
  if (flushScheduled) return;
  flushScheduled = true;
  requestAnimationFrame(() => {
    flushScheduled = false;
    const rows = state.pending;
    state.pending = [];
    if (state.paused) { hold(rows); counters(); return; } // paused since they arrived
    table.add(rows);
    table.render(); // in this frame, not the next
    map.add(rows);
    // From the batch's arrival to its rows in the DOM, frame wait included.
    const ms = performance.now() - flushStart;
    perf.batches++;
    perf.lastBatchMs = ms;
    perf.lastFlows = flushFlows;
    perf.batchMs.push([flushFlows, ms]);
    if (perf.batchMs.length > 500) perf.batchMs.shift();
    counters();
  });
}

// hold keeps rows that arrive (or were waiting for a frame) while paused.
function hold(rows) {
  state.heldCount += rows.length;
  for (const r of rows) state.held.push(r);
  if (state.held.length > CAP * 1.5) state.held.splice(0, state.held.length - CAP);
}

let countersScheduled = false;
function counters() {
  if (countersScheduled) return;
  countersScheduled = true;
  requestAnimationFrame(() => {
    countersScheduled = false;
    writeCounters();
  });
}

function writeCounters() {
  $('count-shown').textContent = table.length;
  $('count-received').textContent = state.received;
  $('count-skipped').textContent = state.skipped;
  $('count-held').textContent = state.heldCount;
  $('held-wrap').hidden = !state.paused;
  $('empty').hidden = table.length > 0;
  $('empty').textContent = state.mode === 'history' ? 'No flows in this time range.' : 'Waiting for flows…';
}

setInterval(() => {
  const now = performance.now();
  state.rateWindow = state.rateWindow.filter(([t]) => now - t < 2000);
  const n = state.rateWindow.reduce((a, [, k]) => a + k, 0);
  $('rate').textContent = state.mode === 'live' ? Math.round(n / 2) : '–';
}, 1000);

function showError(msg) {
  $('error').textContent = msg;
  $('error').hidden = !msg;
}

// refresh applies the chips to the current mode: a new live subscription
// (the table starts over with the newest stored flows), or a new history
// query.
function refresh() {
  table.clear();
  map.clear();
  detail.hide();
  state.pending = [];
  state.held = [];
  state.heldCount = 0;
  if (state.mode === 'live') {
    conn.subscribe(chips.chips, { last: REPLAY });
  } else {
    queryHistory();
  }
  counters();
}

// setPaused freezes the table at once: rows still waiting for a frame are
// held too, and the counters show the frozen table before the click returns.
function setPaused(p) {
  state.paused = p;
  if (p && state.pending.length) {
    hold(state.pending);
    state.pending = [];
  }
  const b = $('pause');
  b.textContent = p ? 'Resume' : 'Pause';
  b.setAttribute('aria-pressed', String(p));
  b.classList.toggle('paused', p);
  if (!p && state.held.length) {
    const rows = state.held.slice(-CAP);
    state.held = [];
    state.heldCount = 0;
    table.add(rows);
    map.add(rows);
  }
  writeCounters();
}
$('pause').addEventListener('click', () => setPaused(!state.paused));

// --- history -------------------------------------------------------------

function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function setMode(mode) {
  state.mode = mode;
  $('mode-live').classList.toggle('active', mode === 'live');
  $('mode-history').classList.toggle('active', mode === 'history');
  $('history-bar').hidden = mode !== 'history';
  $('pause').disabled = mode !== 'live';
  $('mode-label').textContent = mode;
  document.body.classList.toggle('history', mode === 'history');
  const u = new URL(location.href);
  if (mode === 'history') {
    if (!$('hist-from').value) {
      const now = new Date();
      $('hist-from').value = localInput(new Date(now - 15 * 60e3));
      // An empty "to" means now, at every query.
    }
    u.searchParams.set('mode', 'history');
    u.searchParams.set('from', $('hist-from').value);
    if ($('hist-to').value) u.searchParams.set('to', $('hist-to').value); else u.searchParams.delete('to');
    setPaused(false);
  } else {
    u.searchParams.delete('mode'); u.searchParams.delete('from'); u.searchParams.delete('to');
  }
  history.replaceState(history.state, '', u);
  refresh();
}
$('mode-live').addEventListener('click', () => state.mode !== 'live' && setMode('live'));
$('mode-history').addEventListener('click', () => state.mode !== 'history' && setMode('history'));
$('hist-go').addEventListener('click', () => setMode('history'));

let historyAbort = null;
async function queryHistory() {
  // The live stream keeps running underneath but is not shown: switching
  // back is instant.
  conn.subscribe(chips.chips, { last: 0 });
  const from = new Date($('hist-from').value);
  const to = $('hist-to').value ? new Date($('hist-to').value) : null;
  if (isNaN(from) || (to && isNaN(to))) return showError('history: pick a valid time range');
  if (to && to < from) return showError('history: "to" is before "from"');
  const q = new URLSearchParams();
  q.set('since', from.toISOString());
  if (to) q.set('until', to.toISOString());
  q.set('last', String(CAP));
  for (const c of chips.chips) q.append('filter', c);
  if (state.history) q.set('source', 'clickhouse');
  if (historyAbort) historyAbort.abort();
  historyAbort = new AbortController();
  $('conn-text').textContent = 'querying…';
  try {
    const resp = await fetch(`api/v1/flows?${q}`, {
      signal: historyAbort.signal,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    const text = await resp.text();
    if (!resp.ok) throw new Error(text.trim() || resp.statusText);
    const rows = [];
    for (const line of text.split('\n')) if (line) rows.push(toRow(JSON.parse(line)));
    if (state.mode !== 'history') return;
    table.replace(rows);
    map.add(rows);
    showError('');
    $('conn-text').textContent = `history: ${rows.length} flows`;
  } catch (e) {
    if (e.name !== 'AbortError') showError(`history: ${e.message}`);
  }
  counters();
}

// --- start ---------------------------------------------------------------

window.addEventListener('popstate', () => {
  chips.set(chipsFromURL(), false);
  refresh();
});

chips.set(chipsFromURL(), false);
if (params.get('mode') === 'history') {
  if (params.get('from')) $('hist-from').value = params.get('from');
  if (params.get('to')) $('hist-to').value = params.get('to');
}
conn.subscribe(chips.chips, { last: REPLAY });
conn.open();
if (params.get('mode') === 'history') setMode('history'); else counters();
