  var refsData = data.references || {}, featView = data.features || null;

  function uniqueRefs(r) {
    var seen = {}, out = [];
    (r.refs || []).forEach(function (ref) {
      if (ref.id === null || ref.id === undefined) return;
      var key = String(ref.id);
      if (seen[key]) { if (ref.role === 'suggested') seen[key].role = 'suggested'; return; }
      seen[key] = {id: key, label: ref.label, detector: ref.detector, role: ref.role, skipped: ref.skipped};
      out.push(seen[key]);
    });
    var first = out.filter(function (x) { return x.role === 'suggested'; });  // the suggested label's examples first
    return first.concat(out.filter(function (x) { return x.role !== 'suggested'; })).slice(0, __MAX_SHOWN__);
  }

  function refLabel(ref) {
    var found = refsData[ref.id];
    var label = (found && found.label !== null && found.label !== undefined) ? found.label : ref.label;
    return label === null || label === undefined ? '?' : String(label);
  }

  function figure(px, caption, sub, cls, title) {
    var fig = el('figure', 'nb' + (cls ? ' ' + cls : ''));
    if (px) { var c = pixels(px); c.title = title; fig.appendChild(c); }
    else fig.appendChild(el('div', 'nb-missing', sub));
    fig.appendChild(el('figcaption', 'nb-label', caption));
    if (px) { var id = el('figcaption', 'nb-id mono', sub); id.title = sub; fig.appendChild(id); }
    return fig;
  }

  function thumbStrip(r, refs) {
    var strip = el('div', 'nb-strip');
    strip.appendChild(figure(r.px, r.label === null ? '(null)' : r.label, 'this row', 'self',
                             'the suspect' + (r.id === null ? '' : ' ' + r.id)));
    refs.forEach(function (ref) {
      var found = refsData[ref.id];
      var missing = ref.skipped ? 'not looked up' : 'not in the output';
      var cls = (ref.role === 'suggested' ? 'suggested' : '') + (found && found.quarantined ? ' held' : '');
      var title = ref.detector + ' neighbour ' + ref.id + (ref.role === 'suggested' ? ' (has the suggested label)' : '') +
                  (found && found.quarantined ? ' (itself quarantined)' : '');
      strip.appendChild(figure(found && found.px, refLabel(ref), found && found.px ? ref.id : ref.id + ': ' + missing,
                               cls, title));
    });
    return strip;
  }

  function num(v) {
    if (v === null || v === undefined) return '–';
    var a = Math.abs(v);
    return (a !== 0 && (a >= 1e5 || a < 1e-3)) ? v.toExponential(2) : String(Math.round(v * 1000) / 1000);
  }

  // A value as the page shows it: a number (a 0/1 boolean as false / true), or text as written (a
  // categorical value, an ISO date), cut short on screen with the whole value in its tooltip.
  function valueCell(v, kind, cls) {
    if (typeof v === 'string') {
      var td = el('td', 'txt' + (cls ? ' ' + cls : ''), v);
      td.title = v;
      return td;
    }
    if (v === null || v === undefined) {
      var missing = el('td', (kind === 'numeric' ? 'num' : 'txt') + ' missing', '–');
      missing.title = 'missing';
      return missing;
    }
    if (kind === 'boolean') return el('td', 'txt' + (cls ? ' ' + cls : ''), v ? 'true' : 'false');
    return el('td', 'num' + (cls ? ' ' + cls : ''), num(v));
  }

  function typicalText(t, kind) {
    if (!t) return '–';
    if (t.levels) {
      var shown = t.levels.slice(0, 3).map(function (l) {
        return (l[0] === null ? '(missing)' : l[0]) + ' ' + Math.round(l[1] * 100) + '%';
      });
      var more = t.distinct - shown.length;
      return shown.join(' · ') + (more > 0 ? ' · ' + more + ' more' : '');
    }
    if (kind === 'date') return t[0] + ' to ' + t[1];
    if (kind === 'boolean') return t[0] === t[1] ? (t[0] ? 'true' : 'false') : 'false–true';
    return num(t[0]) + '–' + num(t[1]);
  }

  function valueAt(f, v) {  // a column shown as written holds the index of its text in featView.words
    return (f >= featView.written && typeof v === 'number') ? featView.words[v] : v;
  }

  function shownColumns(cols, vals, first) {  // [column, value]: the ones the evidence names first, then in column order
    var pairs = (cols || []).map(function (f, k) { return [f, valueAt(f, vals[k])]; });
    function rank(p) { var i = first.indexOf(p[0]); return i >= 0 ? i : first.length + p[0]; }
    return pairs.sort(function (a, b) { return rank(a) - rank(b); });
  }

  // The columns that matter most for the row (r.feat); the others shown (r.more) in a second table below it.
  function featureTables(r, refs) {
    var main = featureTable(r, refs, shownColumns(r.feat, r.v || [], r.first || []));
    if (!main || !(r.more || []).length) return main;
    var both = el('div'), more = el('details', 'nb-more');
    more.open = true;
    more.appendChild(el('summary', 'nb-head', r.more.length + ' more column' + (r.more.length > 1 ? 's' : '')));
    more.appendChild(featureTable(r, refs, shownColumns(r.more, r.mv || [], [])));
    both.appendChild(main);
    both.appendChild(more);
    return both;
  }

  function featureTable(r, refs, shown) {
    if (!shown.length || !featView) return null;
    var kinds = featView.kinds || [], odd = r.odd || [], first = r.first || [];
    var t = el('table', 'nb-table'), head = el('tr');
    ['feature', 'this row', 'typical'].forEach(function (h) { head.appendChild(el('th', '', h)); });
    refs.forEach(function (ref) {
      var th = el('th', 'txt' + (ref.role === 'suggested' ? ' suggested' : ''), refLabel(ref));
      th.title = ref.detector + ' neighbour ' + ref.id;
      head.appendChild(th);
    });
    t.appendChild(head);
    shown.forEach(function (pair) {
      var f = pair[0], value = pair[1], kind = kinds[f] || 'numeric';
      var tr = el('tr', first.indexOf(f) >= 0 ? 'named' : ''), typical = featView.typical[f];
      var name = el('td', 'mono txt', featView.names[f]);
      name.title = featView.names[f] + ' (' + kind + ')' + (first.indexOf(f) >= 0 ? ': named by the evidence' : '');
      tr.appendChild(name);
      var outside = odd.indexOf(f) >= 0 || (typeof value === 'number' && typical && !typical.levels &&
                                            kind !== 'date' && (value < typical[0] || value > typical[1]));
      tr.appendChild(valueCell(value, kind, outside ? 'out' : ''));
      var tt = el('td', typical && typical.levels ? 'txt typ' : kind === 'date' ? 'txt' : 'num', typicalText(typical, kind));
      if (typical && typical.levels) {
        tt.title = typical.levels.map(function (l) {
          return (l[0] === null ? '(missing)' : l[0]) + ': ' + (Math.round(l[1] * 1000) / 10) + '%';
        }).join('\n') + (typical.distinct > typical.levels.length ? '\n' + typical.distinct + ' values in all' : '');
      }
      tr.appendChild(tt);
      refs.forEach(function (ref) {
        var found = refsData[ref.id], at = found && found.feat ? found.feat.indexOf(f) : -1;
        tr.appendChild(at >= 0 ? valueCell(valueAt(f, found.v[at]), kind, '') : el('td', 'num', found ? '–' : '?'));
      });
      t.appendChild(tr);
    });
    return t;
  }

  function neighboursNode(r) {
    var refs = uniqueRefs(r);
    if (!refs.length) return null;
    var box = el('div', 'nb-box');
    box.appendChild(el('div', 'nb-head', 'compared with the neighbours named above' +
      (refs.some(function (x) { return x.role === 'suggested'; }) ? ' (green: carries the suggested label)' : '')));
    var body = data.thumb ? thumbStrip(r, refs) : featureTables(r, refs), shown = mediaStrip(r, refs);
    if (!body && !shown) return null;
    if (body) box.appendChild(body);
    if (shown) box.appendChild(shown);
    var missing = refs.filter(function (x) { return !refsData[x.id]; }).length;
    if (missing && !data.thumb && !data.media) box.appendChild(el('div', 'nb-head', missing + ' named neighbour(s) not in the output (?)'));
    return box;
  }
