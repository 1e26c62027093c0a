(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var meta = data.review || {};
  var bar = document.getElementById('review-bar');
  if (!bar || !data.rows.length) return;
  var KEY = 'sanitizer-review:' + meta.run_id;
  var reviewer = document.getElementById('reviewer');
  var reasonBox = document.getElementById('decision-reason');
  var tallyBox = document.getElementById('review-tally');
  var statusBox = document.getElementById('review-status');
  var which = document.getElementById('filter-decision');
  var bulkRelease = document.getElementById('bulk-release'), bulkConfirm = document.getElementById('bulk-confirm');
  var download = document.getElementById('download-decisions'), clear = document.getElementById('clear-decisions');
  var byId = {};
  data.rows.forEach(function (r) { if (r.id !== null) byId[r.id] = r; });
  var decisions = {}, table = null, current = -1, stored = true, clearArmed = null;

  function say(text) { statusBox.textContent = text; }

  // The review bar sticks below the navigation bar while the table is in view: what is scrolled into
  // view (the current row, a clicked button) must land below both.
  function padScroll() {
    var nav = document.querySelector('nav.toc');
    var top = nav ? nav.getBoundingClientRect().height : 0;
    bar.style.top = Math.round(top) + 'px';
    var px = top + bar.getBoundingClientRect().height + 12;
    document.documentElement.style.scrollPaddingTop = Math.round(px) + 'px';
  }
  padScroll();
  window.addEventListener('resize', padScroll);
  function storage() { try { return window.localStorage; } catch (e) { return null; } }

  function load() {
    var s = storage(), raw = null, dropped = 0;
    try { raw = s ? s.getItem(KEY) : null; } catch (e) { raw = null; }
    if (raw) {
      var saved = {};
      try { saved = JSON.parse(raw) || {}; } catch (e) { saved = {}; }
      Object.keys(saved).forEach(function (id) {
        var d = saved[id], r = byId[id];
        if (r && d && r.sha && d.sha === r.sha && (d.decision === 'release' || d.decision === 'confirm')) decisions[id] = d;
        else dropped += 1;
      });
    }
    var kept = Object.keys(decisions).length;
    if (kept || dropped) {
      say('restored ' + kept + ' decision(s) saved in this browser for run ' + meta.run_id +
          (dropped ? '; ' + dropped + ' saved for other content or other rows were dropped' : ''));
    }
    try { var name = s ? s.getItem('sanitizer-review:reviewer') : null; if (name && !reviewer.value) reviewer.value = name; }
    catch (e) { /* no storage */ }
  }

  function save() {
    var s = storage();
    try {
      if (!s) throw new Error('no storage');
      s.setItem(KEY, JSON.stringify(decisions));
      if (reviewer.value.trim()) s.setItem('sanitizer-review:reviewer', reviewer.value.trim());
      stored = true;
    } catch (e) {
      if (stored) say('this browser keeps no local storage for this page: download the decisions before closing it');
      stored = false;
    }
  }

  function why(r, kind) {
    if (r.id === null) return 'this row has no id, so no decision can name it';
    if (!r.sha) return 'this row has no content hash in the quarantine, so a decision could not be bound to it';
    if (kind === 'release' && r.row_check) return r.id + ' failed a row check: a release overrides detectors, not broken data';
    return '';
  }

  function decide(r, kind, quiet) {
    var problem = why(r, kind);
    if (problem) { if (!quiet) say(problem); return false; }
    var text = reasonBox.value.trim();
    decisions[r.id] = {decision: kind, reason: text || (kind === 'release' ? 'released in report.html' : 'confirmed in report.html'),
                       reviewer: reviewer.value.trim(), time: new Date().toISOString(), sha: r.sha};
    if (!quiet) { save(); say((kind === 'release' ? 'released ' : 'confirmed ') + r.id); }
    return true;
  }

  function undo(r) {
    if (r.id !== null && decisions[r.id]) { delete decisions[r.id]; save(); say('undecided ' + r.id); }
  }

  function tally() {
    var rel = 0, con = 0;
    Object.keys(decisions).forEach(function (id) { if (decisions[id].decision === 'release') rel += 1; else con += 1; });
    var open = data.rows.length - rel - con;
    tallyBox.textContent = rel + ' released · ' + con + ' confirmed · ' + open + ' undecided';
    tallyBox.setAttribute('data-released', String(rel));
    tallyBox.setAttribute('data-confirmed', String(con));
    var n = table ? table.view().length : data.rows.length;
    bulkRelease.textContent = 'Release all ' + n + ' filtered';
    bulkConfirm.textContent = 'Confirm all ' + n + ' filtered';
    bulkRelease.disabled = bulkConfirm.disabled = n === 0;
    download.disabled = rel + con === 0;
    clear.disabled = rel + con === 0;
  }

  function button(label, cls, on, r, kind) {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = cls + (on ? ' on' : '');
    b.textContent = label;
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
    var problem = why(r, kind);
    if (problem) { b.disabled = true; b.title = problem; }
    b.addEventListener('click', function () {
      var i = table.view().indexOf(r);
      if (i >= 0) current = i;
      if (on) undo(r); else decide(r, kind);
      refresh();
    });
    return b;
  }

  var api = {
    cell: function (r) {
      var td = document.createElement('td');
      td.className = 'dec';
      var d = r.id !== null ? decisions[r.id] : null;
      td.appendChild(button('Release', 'rel', d && d.decision === 'release', r, 'release'));
      td.appendChild(button('Confirm', 'con', d && d.decision === 'confirm', r, 'confirm'));
      if (d) {
        var note = document.createElement('span');
        note.className = 'dec-note';
        note.textContent = d.reason;
        td.appendChild(note);
      }
      return td;
    },
    rowClass: function (r) {
      var d = r.id !== null ? decisions[r.id] : null;
      return d ? 'decided-' + d.decision : '';
    },
    keep: function (r) {
      var want = which.value, d = r.id !== null ? decisions[r.id] : null;
      if (!want) return true;
      if (want === 'undecided') return !d;
      return !!d && d.decision === want;
    },
    rendered: function (first, nodes) {
      Array.prototype.forEach.call(nodes, function (tr, k) {
        if (first + k === current) tr.classList.add('current'); else tr.classList.remove('current');
      });
      tally();
    },
    filtered: function () { current = -1; },
    attach: function (t) { table = t; tally(); }
  };
  window.sanitizerReview = api;

  function refresh() { table.redraw(); }

  function move(step) {
    var n = table.view().length;
    if (!n) return;
    current = current < 0 ? (step > 0 ? 0 : n - 1) : Math.min(Math.max(current + step, 0), n - 1);
    var tr = table.show(current);
    if (tr && tr.scrollIntoView) tr.scrollIntoView({block: 'nearest'});
  }

  function decideCurrent(kind) {
    var view = table.view();
    if (current < 0 || current >= view.length) { say('pick a row first: j / ↓ moves to the next one'); return; }
    var r = view[current];
    if (decide(r, kind)) {
      if (which.value) {  // the row may leave the filtered view: stay at the same place in it
        var at = current;
        table.refresh();
        current = Math.min(at, table.view().length - 1);
        if (current >= 0) table.show(current);
      }
      else move(1);
    } else refresh();
  }

  document.addEventListener('keydown', function (e) {
    var tag = (e.target && e.target.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'select' || tag === 'textarea') {
      if (e.key === 'Escape' && e.target.blur) e.target.blur();  // Esc: leave the box, keys drive the table again
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || !table) return;
    var k = e.key;
    if (k === 'j' || k === 'ArrowDown') { e.preventDefault(); move(1); }
    else if (k === 'k' || k === 'ArrowUp') { e.preventDefault(); move(-1); }
    else if (k === 'r') { e.preventDefault(); decideCurrent('release'); }
    else if (k === 'c') { e.preventDefault(); decideCurrent('confirm'); }
    else if (k === 'u') {
      e.preventDefault();
      var view = table.view();
      if (current >= 0 && current < view.length) { undo(view[current]); refresh(); }
    }
    else if (k === '/') { e.preventDefault(); document.getElementById('filter-text').focus(); }
  });

  function bulk(kind) {
    var done = 0, refused = 0;
    table.view().forEach(function (r) { if (decide(r, kind, true)) done += 1; else refused += 1; });
    save();
    say((kind === 'release' ? 'released ' : 'confirmed ') + done + ' filtered row(s)' +
        (refused ? '; ' + refused + ' could not be ' + (kind === 'release' ? 'released' : 'confirmed') +
         ' (failed a row check, or no id / content hash)' : ''));
    if (which.value) table.refresh(); else refresh();
  }
  bulkRelease.addEventListener('click', function () { bulk('release'); });
  bulkConfirm.addEventListener('click', function () { bulk('confirm'); });
  which.addEventListener('change', function () { current = -1; table.refresh(); });
  reviewer.addEventListener('change', save);

  download.addEventListener('click', function () {
    var name = reviewer.value.trim();
    var ids = Object.keys(decisions);
    if (ids.some(function (id) { return !decisions[id].reviewer; }) && !name) {
      say('enter your name in "reviewer" first: every decision records who made it');
      reviewer.focus();
      return;
    }
    ids.sort(function (a, b) { return decisions[a].time < decisions[b].time ? -1 : decisions[a].time > decisions[b].time ? 1 : 0; });
    var lines = ids.map(function (id) {
      var d = decisions[id];
      return JSON.stringify({id: id, decision: d.decision, reason: d.reason, reviewer: d.reviewer || name,
                             time: d.time, run_id: meta.run_id, content_sha256: d.sha});
    });
    var blob = new Blob([lines.join('\n') + '\n'], {type: 'application/x-ndjson'});
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'decisions-' + String(meta.run_id).replace(/[^A-Za-z0-9._-]+/g, '-') + '.jsonl';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    say('downloaded ' + lines.length + ' decision(s) as ' + a.download +
        '; take them in with: sanitize review ' + (meta.out || 'OUT') + ' import ' + a.download);
  });

  clear.addEventListener('click', function () {
    var n = Object.keys(decisions).length;
    if (!clearArmed) {
      clear.textContent = 'Clear all ' + n + '? Click again';
      clearArmed = setTimeout(function () { clearArmed = null; clear.textContent = 'Clear decisions'; }, 4000);
      return;
    }
    clearTimeout(clearArmed);
    clearArmed = null;
    clear.textContent = 'Clear decisions';
    decisions = {};
    save();
    say('cleared ' + n + ' decision(s) from this page and this browser');
    table.refresh();
  });

  load();
})();
