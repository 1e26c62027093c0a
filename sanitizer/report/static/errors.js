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
