(function () {
  var pending = [];
  function record(text) {
    var pre = document.getElementById('js-errors');
    if (!pre) { pending.push(text); return; }
    pre.textContent += text + '\n';
    pre.hidden = false;
  }
  window.deltannRecordError = record;
  window.onerror = function (message, source, line, column) {
    record(String(message) + (line ? ' (line ' + line + ':' + column + ')' : ''));
    return false;
  };
  window.addEventListener('unhandledrejection', function (event) {
    record('unhandled rejection: ' + String(event.reason));
  });
  document.addEventListener('securitypolicyviolation', function (event) {
    record('blocked by the content security policy: ' + event.blockedURI + ' (' +
           event.violatedDirective + ')');
  });
  document.addEventListener('DOMContentLoaded', function () {
    pending.splice(0).forEach(record);
  });
})();
