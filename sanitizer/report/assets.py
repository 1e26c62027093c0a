"""The report page's stylesheet and scripts, inlined into report.html (nothing is fetched)."""

from sanitizer.report.neighbours_js import NEIGHBOURS_CSS, NEIGHBOURS_JS

CSS = r"""
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f7f8fa; --card:#ffffff; --accent:#0f766e;
        --bad:#b91c1c; --good:#15803d; --warn:#b45309; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header.top { background:#111827; color:#f9fafb; padding:18px 28px 14px; }
header.top h1 { margin:0 0 4px; font-size:20px; font-weight:600; letter-spacing:.2px; }
header.top .meta { color:#cbd5e1; font-size:12.5px; display:flex; flex-wrap:wrap; gap:4px 18px; }
header.top .meta b { color:#f9fafb; font-weight:500; }
nav.toc { position:sticky; top:0; z-index:5; background:#ffffffee; border-bottom:1px solid var(--line);
          padding:8px 28px; display:flex; gap:18px; font-size:13px; backdrop-filter: blur(4px); }
nav.toc a { color:var(--accent); text-decoration:none; }
nav.toc a:hover { text-decoration:underline; }
main { max-width:1440px; margin:0 auto; padding:18px 28px 40px; }
section { margin:0 0 26px; scroll-margin-top:48px; }
h2 { font-size:16px; margin:0 0 10px; font-weight:650; }
h3 { font-size:13.5px; margin:0 0 6px; font-weight:600; }
p.note, .note { color:var(--muted); font-size:12.5px; margin:4px 0 8px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.badge.ok { background:#dcfce7; color:var(--good); }
.badge.fail { background:#fee2e2; color:var(--bad); }
.badge.skip { background:#fef3c7; color:var(--warn); }
.badge.neutral { background:#e5e7eb; color:#374151; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
.card .v { font-size:26px; font-weight:650; font-variant-numeric: tabular-nums; }
.card .s { color:var(--muted); font-size:12px; }
.card.q .v { color:var(--bad); }
.card.c .v { color:var(--good); }
.panel { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(520px, 1fr)); gap:14px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:#374151; background:#f3f4f6; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
table.small td, table.small th { font-size:13px; }
table.narrow { width:auto; min-width:min(560px, 100%); }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12.5px; }
.wrap { overflow-wrap:anywhere; }
.empty { padding:28px; text-align:center; background:#f0fdf4; border:1px solid #bbf7d0; color:#166534;
         border-radius:8px; font-size:15px; }
.callout { padding:8px 12px; border-left:3px solid var(--warn); background:#fffbeb; margin:0 0 10px; font-size:13px; }
.callout.bad { border-left-color:var(--bad); background:#fef2f2; }
svg.chart { max-width:100%; height:auto; font-family: inherit; }
svg .tick { font-size:10.5px; fill:#4b5563; }
svg .axis { font-size:11.5px; fill:#374151; }
svg .thr { font-size:11px; fill:#c0392b; font-weight:600; }
svg .cell { font-size:11px; }
.legend { display:flex; gap:14px; font-size:12px; color:var(--muted); margin:2px 0 6px; }
.legend i { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
.controls { display:flex; flex-wrap:wrap; gap:10px; align-items:center; margin:0 0 10px; }
.controls input[type=search] { width:320px; max-width:100%; padding:6px 9px; border:1px solid #d1d5db; border-radius:6px;
                               font:inherit; }
.controls select, .controls button { padding:5px 9px; border:1px solid #d1d5db; border-radius:6px; background:#fff;
                                     font:inherit; cursor:pointer; }
.controls button:disabled { opacity:.45; cursor:default; }
.controls .spacer { flex:1; }
#suspects th.sortable { cursor:pointer; user-select:none; }
#suspects th.sortable:hover { background:#e5e7eb; }
#suspects th .arrow { color:var(--muted); font-size:10px; margin-left:3px; }
#suspects td { font-size:12.5px; }
#suspects td.id { min-width:96px; max-width:220px; }
#suspects td.id.short { white-space:nowrap; }
#suspects td.label { max-width:120px; }
#suspects td.ev { min-width:300px; max-width:520px; }
#suspects tr:hover td { background:#fafafa; }
.chip { display:inline-block; padding:0 6px; margin:1px 3px 1px 0; border-radius:9px; font-size:11.5px;
        border:1px solid #9ca3af; color:#374151; background:#fff; white-space:nowrap; }
.score { color:#9ca3af; }
.score.hit { color:var(--ink); font-weight:650; }
.ev-item { margin:0 0 4px; }
.ev-code { font-weight:600; }
.ev-head { color:var(--muted); margin-left:6px; }
.ev-line { color:#4b5563; font-size:12px; overflow-wrap:anywhere; }
canvas.thumb { width:48px; height:48px; image-rendering:pixelated; border:1px solid var(--line); border-radius:3px;
               background:#000; display:block; }
#js-errors { background:#fef2f2; color:var(--bad); border:1px solid #fecaca; padding:8px 12px; margin:10px 28px;
             border-radius:6px; font-family: ui-monospace, monospace; font-size:12px; white-space:pre-wrap; }
footer { color:var(--muted); font-size:12px; border-top:1px solid var(--line); padding-top:10px; }
details summary { cursor:pointer; color:var(--accent); font-size:13px; }
""" + NEIGHBOURS_CSS

# Runs first: anything that goes wrong on the page (a script error, something the
# content security policy blocked) is written into #js-errors, visibly.
ERROR_JS = r"""
(function () {
  'use strict';
  var box = document.getElementById('js-errors');
  function note(msg) {
    box.hidden = false;
    var line = document.createElement('div');
    line.textContent = msg;
    box.appendChild(line);
    document.body.setAttribute('data-js-errors', String(box.childNodes.length));
  }
  window.addEventListener('error', function (e) {
    var where = e.filename ? ' (' + e.filename + ':' + e.lineno + ')' : '';
    note('error: ' + (e.message || (e.target && e.target.tagName) || e.type) + where);
  }, true);
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) {
    note('blocked by the content security policy: ' + e.violatedDirective + ' ' + (e.blockedURI || ''));
  });
})();
"""

TABLE_JS = r"""
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var table = document.getElementById('suspects');
  if (!table || !data.rows.length) { document.body.setAttribute('data-report-ready', '1'); return; }

  var rows = data.rows, dets = data.detectors, colours = data.colours || {};
  var tbody = document.getElementById('suspects-body');
  var text = document.getElementById('filter-text');
  var reason = document.getElementById('filter-reason');
  var status = document.getElementById('table-status');
  var prev = document.getElementById('page-prev'), next = document.getElementById('page-next');
  var sizeSel = document.getElementById('page-size');
  var pageSize = parseInt(sizeSel.value, 10) || 100, page = 0, sortKey = 'rank', sortDir = 1;
  var view = rows.slice(), started = false;
  var nf = new Intl.NumberFormat('en-US');
  var review = window.sanitizerReview || null;  // the decision controls (review_assets.REVIEW_JS), when present

  rows.forEach(function (r, i) {
    r.rank = i;
    var parts = [r.id, r.label, r.codes.join(' ')];
    r.evidence.forEach(function (e) { parts.push(e.code, e.head, e.lines.join(' ')); });
    r.hay = parts.join(' ').toLowerCase();
  });

  function el(tag, cls, txt) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (txt !== undefined && txt !== null) node.textContent = String(txt);
    return node;
  }

  function value(r, key) {
    if (key === 'rank') return r.rank;
    if (key === 'id') return r.id;
    if (key === 'label') return r.label;
    if (key === 'codes') return r.codes.length;
    if (key.indexOf('score:') === 0) return r.scores[dets.indexOf(key.slice(6))];
    return null;
  }

  function compare(a, b) {
    var x = value(a, sortKey), y = value(b, sortKey);
    var xn = (x === null || x === undefined), yn = (y === null || y === undefined);
    if (xn || yn) return xn && yn ? a.rank - b.rank : (xn ? 1 : -1);   // missing values last
    var c = (typeof x === 'number' && typeof y === 'number') ? x - y
          : String(x).localeCompare(String(y), undefined, {numeric: true});
    return c === 0 ? a.rank - b.rank : c * sortDir;
  }

  function apply(keepPage) {
    var q = text.value.trim().toLowerCase(), code = reason.value;
    view = rows.filter(function (r) {
      return (!code || r.codes.indexOf(code) >= 0) && (!q || r.hay.indexOf(q) >= 0) && (!review || review.keep(r));
    });
    view.sort(compare);
    if (!keepPage) page = 0;
    if (review) review.filtered();
    render();
  }

  function drawThumb(r) {
    var canvas = pixels(r.px);
    canvas.title = 'feature column ' + data.thumb.column;
    return canvas;
  }

  function pixels(px) {  // a base64 grayscale thumbnail, data.thumb.side pixels a side
    var side = data.thumb.side;
    var canvas = el('canvas', 'thumb');
    canvas.width = side; canvas.height = side;
    var bytes = atob(px), ctx = canvas.getContext('2d'), img = ctx.createImageData(side, side);
    for (var i = 0; i < side * side; i++) {
      var v = bytes.charCodeAt(i);
      img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return canvas;
  }
/*NEIGHBOURS*/

  function fmtScore(v) {
    if (v === null || v === undefined) return '–';
    var a = Math.abs(v);
    return (a !== 0 && (a >= 1e4 || a < 1e-3)) ? v.toExponential(2) : v.toFixed(3);
  }

  function rowNode(r) {
    var tr = el('tr');
    tr.appendChild(el('td', 'num', r.rank + 1));
    var idText = r.id === null ? '(null)' : r.id;
    tr.appendChild(el('td', 'id mono wrap' + (idText.length <= 24 ? ' short' : ''), idText));
    tr.appendChild(el('td', 'label wrap', r.label === null ? '(null)' : r.label));
    if (data.thumb) {
      var td = el('td', 'thumbcell');
      if (r.px) td.appendChild(drawThumb(r));
      tr.appendChild(td);
    }
    if (review) {
      tr.appendChild(review.cell(r));
      var cls = review.rowClass(r);
      if (cls) tr.className = cls;
    }
    var codes = el('td', 'codes');
    r.codes.forEach(function (c) {
      var chip = el('span', 'chip', c);
      var col = colours[c];
      if (col) { chip.style.borderColor = col; chip.style.color = col; }
      codes.appendChild(chip);
    });
    tr.appendChild(codes);
    dets.forEach(function (d, j) {
      var hit = r.flagged_by.indexOf(d) >= 0;
      tr.appendChild(el('td', 'num score' + (hit ? ' hit' : ''), fmtScore(r.scores[j])));
    });
    var ev = el('td', 'ev');
    r.evidence.forEach(function (e) {
      var item = el('div', 'ev-item');
      var head = el('div');
      head.appendChild(el('span', 'ev-code', e.code));
      if (e.head) head.appendChild(el('span', 'ev-head', e.head));
      item.appendChild(head);
      e.lines.forEach(function (line) { item.appendChild(el('div', 'ev-line', line)); });
      ev.appendChild(item);
    });
    var nb = neighboursNode(r);
    if (nb) ev.appendChild(nb);
    tr.appendChild(ev);
    return tr;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(view.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * pageSize, slice = view.slice(start, start + pageSize);
    var frag = document.createDocumentFragment();
    if (!slice.length) {
      var tr = el('tr'), td = el('td', 'note', 'No quarantined rows match this filter.');
      td.colSpan = table.tHead.rows[0].cells.length;
      tr.appendChild(td); frag.appendChild(tr);
    }
    slice.forEach(function (r) { frag.appendChild(rowNode(r)); });
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    tbody.appendChild(frag);
    if (review && slice.length) review.rendered(start, tbody.children);
    status.textContent = view.length
      ? 'rows ' + nf.format(start + 1) + '–' + nf.format(start + slice.length) + ' of ' + nf.format(view.length) +
        (view.length !== rows.length ? ' matching (of ' + nf.format(rows.length) + ' shown)' : '')
      : 'no matching rows';
    if (started) writeHash();
    prev.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    Array.prototype.forEach.call(table.querySelectorAll('th.sortable'), function (th) {
      var on = th.getAttribute('data-key') === sortKey;
      th.setAttribute('aria-sort', on ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
      th.querySelector('.arrow').textContent = on ? (sortDir > 0 ? '▲' : '▼') : '';
    });
  }

  // The view lives in the address (#q=...&reason=...&sort=...&dir=...&page=...), so a filtered,
  // sorted view can be bookmarked or shared; values from it are only compared, never rendered as markup.
  var sortKeys = Array.prototype.map.call(table.querySelectorAll('th.sortable'), function (th) {
    return th.getAttribute('data-key');
  });
  function readHash() {
    var h = location.hash.replace(/^#/, '');
    if (h.indexOf('=') < 0) return;
    var params = new URLSearchParams(h);
    if (params.has('q')) text.value = params.get('q');
    var r = params.get('reason');
    if (r !== null && Array.prototype.some.call(reason.options, function (o) { return o.value === r; })) reason.value = r;
    var s = params.get('sort');
    if (s !== null && sortKeys.indexOf(s) >= 0) { sortKey = s; sortDir = params.get('dir') === 'desc' ? -1 : 1; }
    var pg = parseInt(params.get('page'), 10);
    if (pg > 0) page = pg - 1;
    return true;
  }
  function writeHash() {
    var params = new URLSearchParams();
    if (text.value) params.set('q', text.value);
    if (reason.value) params.set('reason', reason.value);
    if (sortKey !== 'rank') { params.set('sort', sortKey); params.set('dir', sortDir > 0 ? 'asc' : 'desc'); }
    if (page > 0) params.set('page', String(page + 1));
    var h = params.toString();
    try { history.replaceState(null, '', h ? '#' + h : location.pathname + location.search); } catch (e) { /* file: quirks */ }
  }

  Array.prototype.forEach.call(table.querySelectorAll('th.sortable'), function (th) {
    function go() {
      var key = th.getAttribute('data-key');
      if (key === sortKey) sortDir = -sortDir;
      else { sortKey = key; sortDir = (key.indexOf('score:') === 0 || key === 'codes') ? -1 : 1; }
      apply(false);
    }
    th.addEventListener('click', go);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(); } });
  });
  text.addEventListener('input', function () { apply(false); });
  reason.addEventListener('change', function () { apply(false); });
  sizeSel.addEventListener('change', function () { pageSize = parseInt(sizeSel.value, 10) || 100; apply(false); });
  prev.addEventListener('click', function () { page -= 1; render(); });
  next.addEventListener('click', function () { page += 1; render(); });

  if (review) {
    review.attach({
      view: function () { return view; },
      refresh: function () { apply(true); },
      redraw: function () { render(); },
      show: function (i) {  // make view[i] visible (its page) and return its row
        page = Math.floor(i / pageSize);
        render();
        return tbody.children[i - page * pageSize] || null;
      }
    });
  }

  var fromAddress = readHash();
  apply(true);
  started = true;
  if (fromAddress) requestAnimationFrame(function () { document.getElementById('suspects-section').scrollIntoView(); });
  document.body.setAttribute('data-report-ready', '1');
})();
""".replace("/*NEIGHBOURS*/", NEIGHBOURS_JS)
