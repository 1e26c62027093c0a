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

  function featureTable(r, refs) {
    var feats = r.feat || [];
    if (!feats.length || !featView) return null;
    var t = el('table', 'nb-table'), head = el('tr');
    ['feature', 'this row', 'typical'].forEach(function (h) { head.appendChild(el('th', '', h)); });
    refs.forEach(function (ref) {
      var th = el('th', ref.role === 'suggested' ? 'suggested' : '', refLabel(ref));
      th.title = ref.detector + ' neighbour ' + ref.id;
      head.appendChild(th);
    });
    t.appendChild(head);
    feats.forEach(function (f, k) {
      var tr = el('tr'), typical = featView.typical[f];
      tr.appendChild(el('td', 'mono', featView.names[f]));
      var value = r.v ? r.v[k] : null;
      var outside = typical && value !== null && value !== undefined && (value < typical[0] || value > typical[1]);
      tr.appendChild(el('td', 'num' + (outside ? ' out' : ''), num(value)));
      tr.appendChild(el('td', 'num', typical ? num(typical[0]) + '–' + num(typical[1]) : '–'));
      refs.forEach(function (ref) {
        var found = refsData[ref.id], at = found && found.feat ? found.feat.indexOf(f) : -1;
        tr.appendChild(el('td', 'num', at >= 0 ? num(found.v[at]) : (found ? '–' : '?')));
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
    var body = data.thumb ? thumbStrip(r, refs) : featureTable(r, refs);
    if (!body) return null;
    box.appendChild(body);
    var missing = refs.filter(function (x) { return !refsData[x.id]; }).length;
    if (missing && !data.thumb) box.appendChild(el('div', 'nb-head', missing + ' named neighbour(s) not in the output (?)'));
    return box;
  }
