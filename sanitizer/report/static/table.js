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
    if (data.media && data.media.texts && r.tx !== undefined) parts.push(data.media.texts[r.tx]);
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
    mediaCells(tr, r);
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
