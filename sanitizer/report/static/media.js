  // Image thumbnails and text snippets (sanitizer.report.media): each distinct image and text is stored
  // once in data.media and named by index (im, tx); why one is absent: imx, txx. Everything reaches the
  // page through textContent, a title, or an image element's src set to a data: URI of a PNG.
  var media = data.media || null, SNIPPET = (media && media.snippet) || 280;
  var WORD = /[\p{L}\p{N}_]+/gu;

  function imageNode(entry, title, missing) {
    if (entry && entry.im !== undefined && entry.im !== null) {
      var img = el('img', 'mthumb');
      img.src = 'data:image/png;base64,' + media.images[entry.im];
      img.alt = title;
      img.title = title;
      return img;
    }
    var why = entry ? (entry.imx || 'no image') : (missing || 'not in the output');
    var box = el('div', 'mthumb-missing', why);
    box.title = title + ': ' + why;
    return box;
  }

  function marked(text, hard, soft) {  // text with the words of hard (a trigger) and soft (unusual) in <mark>
    var frag = document.createDocumentFragment(), last = 0, m;
    WORD.lastIndex = 0;
    while ((m = WORD.exec(text)) !== null) {
      var w = m[0].toLowerCase(), cls = hard.indexOf(w) >= 0 ? 'trig' : (soft.indexOf(w) >= 0 ? 'rare' : null);
      if (!cls) continue;
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      var mk = el('mark', cls, m[0]);
      mk.title = cls === 'trig' ? 'named by the evidence as a trigger' : 'rare among the texts on this page';
      frag.appendChild(mk);
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function firstMark(text, words) {
    var m;
    WORD.lastIndex = 0;
    while ((m = WORD.exec(text)) !== null) if (words.indexOf(m[0].toLowerCase()) >= 0) return m.index;
    return -1;
  }

  // A snippet of about SNIPPET characters (size: half that for a neighbour's; around the first marked word
  // when it lies further in), the stored text in its tooltip and, when longer, in an expandable "full text".
  function textNode(entry, hard, soft, missing, size) {
    var box = el('div', 'snip');
    if (!entry || entry.tx === undefined || entry.tx === null) {
      box.appendChild(el('span', 'snip-missing', entry ? (entry.txx || 'no text') : (missing || 'not in the output')));
      return box;
    }
    var text = media.texts[entry.tx], start = 0, p = firstMark(text, hard.concat(soft)), n = size || SNIPPET;
    if (p > n - 60) start = Math.max(0, text.lastIndexOf(' ', p - 80) + 1);
    var shown = el('span', 'snip-text');
    shown.title = text;
    if (start > 0) shown.appendChild(document.createTextNode('…'));
    shown.appendChild(marked(text.slice(start, start + n), hard, soft));
    if (start + n < text.length) shown.appendChild(document.createTextNode('…'));
    box.appendChild(shown);
    if (start > 0 || start + n < text.length) {
      var full = el('details', 'snip-full'), all = el('div', 'snip-all');
      full.appendChild(el('summary', '', 'full text (' + text.length + ' characters)'));
      all.appendChild(marked(text, hard, soft));
      full.appendChild(all);
      box.appendChild(full);
    }
    return box;
  }

  function mediaCells(tr, r) {  // the suspect's own image and text, in the table's media columns
    if (!media) return;
    if (media.image) {
      var ic = el('td', 'mediacell');
      ic.appendChild(imageNode(r, media.image + ' of ' + (r.id === null ? 'this row' : r.id)));
      tr.appendChild(ic);
    }
    if (media.text) {
      var tc = el('td', 'textcell');
      tc.appendChild(textNode(r, r.hw || [], r.hl || []));
      tr.appendChild(tc);
    }
  }

  function mediaStrip(r, refs) {  // the neighbours' images beside the suspect's, then their texts
    if (!media) return null;
    var wrap = el('div', 'm-refs');
    if (media.image) {
      var strip = el('div', 'nb-strip');
      var self = el('figure', 'nb self');
      self.appendChild(imageNode(r, 'this row'));
      self.appendChild(el('figcaption', 'nb-label', r.label === null ? '(null)' : r.label));
      self.appendChild(el('figcaption', 'nb-id mono', 'this row'));
      strip.appendChild(self);
      refs.forEach(function (ref) {
        var found = refsData[ref.id], fig = el('figure', 'nb' + (ref.role === 'suggested' ? ' suggested' : '') +
                                                   (found && found.quarantined ? ' held' : ''));
        var title = ref.detector + ' neighbour ' + ref.id +
                    (ref.role === 'suggested' ? ' (has the suggested label)' : '');
        fig.appendChild(imageNode(found, title, ref.skipped ? 'not looked up' : 'not in the output'));
        fig.appendChild(el('figcaption', 'nb-label', refLabel(ref)));
        var id = el('figcaption', 'nb-id mono', ref.id);
        id.title = ref.id;
        fig.appendChild(id);
        strip.appendChild(fig);
      });
      wrap.appendChild(strip);
    }
    if (media.text) {
      refs.forEach(function (ref) {
        var found = refsData[ref.id], line = el('div', 'm-ref' + (ref.role === 'suggested' ? ' suggested' : ''));
        var head = el('span', 'm-ref-head', refLabel(ref) + ' · ' + ref.id);
        head.title = ref.detector + ' neighbour ' + ref.id;
        line.appendChild(head);
        var missing = ref.skipped ? 'not looked up' : 'not in the output';
        line.appendChild(textNode(found, r.hw || [], [], missing, SNIPPET / 2));
        wrap.appendChild(line);
      });
    }
    return wrap;
  }
