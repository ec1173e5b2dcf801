// Live queue: poll /desk/poll and, when the number of tickets or the newest change differs, fetch the rows
// again (server-rendered and escaped) and swap them in. Without JavaScript the page works with a reload.
(function () {
  var box = document.getElementById("queue");
  if (!box || !window.fetch) return;
  var partial = box.getAttribute("data-partial"), state = null;
  function tick() {
    fetch("/desk/poll", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        var key = s.count + "|" + s.newest;
        if (state !== null && key !== state) {
          return fetch(partial, { credentials: "same-origin", cache: "no-store" })
            .then(function (r) { return r.ok ? r.text() : null; })
            .then(function (html) { if (html !== null) { box.innerHTML = html; } state = key; });
        }
        state = key;
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, 3000); });
  }
  tick();
})();
