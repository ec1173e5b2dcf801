// Progressive enhancement of the asset field: fill its <datalist> with inventory matches as the user types.
// Without JavaScript the field is a plain text box and free text is accepted either way.
(function () {
  var input = document.getElementById("asset");
  var list = document.getElementById("asset-suggestions");
  if (!input || !list || !window.fetch) return;
  var timer = null, last = "";
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = input.value.trim();
      if (q.length < 2 || q === last) return;
      last = q;
      fetch("/assets/suggest?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (items) {
          while (list.firstChild) list.removeChild(list.firstChild);
          items.forEach(function (a) {
            var option = document.createElement("option");
            option.value = a.name + " (" + a.tag + ")";  // textContent/value: never parsed as HTML
            list.appendChild(option);
          });
        })
        .catch(function () {});
    }, 200);
  });
})();
