// Live updates of the public page: on each published result of the shown period and profile (Server-Sent
// Events), fetch the server-rendered map and table again and swap them in. Without JavaScript the page is
// complete, just not live.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var results = document.getElementById("results");
  var status = document.getElementById("live-status");

  function wireDots(root) {
    root.querySelectorAll("circle.dot[data-href]").forEach(function (dot) {
      dot.addEventListener("click", function () { window.location.href = dot.getAttribute("data-href"); });
    });
  }
  wireDots(document);
  if (!results || results.getAttribute("data-live") !== "true" || !window.EventSource) return;

  var pending = null;
  var changed = {};
  function refresh() {
    pending = null;
    var units = Object.keys(changed);
    changed = {};
    fetch(results.getAttribute("data-partial"), { headers: { "Accept": "text/html" } })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        var focused = document.activeElement && results.contains(document.activeElement);
        results.innerHTML = html;
        wireDots(results);
        units.forEach(function (code) {
          results.querySelectorAll('[data-unit="' + CSS.escape(code) + '"]').forEach(function (el) { el.classList.add("fresh"); });
        });
        if (focused) results.querySelector(".table-scroll") && results.querySelector(".table-scroll").focus();
        if (status && units.length) {
          var row = results.querySelector('tr[data-unit="' + CSS.escape(units[0]) + '"] th');
          var name = row ? row.textContent.trim() : units[0];
          status.textContent = status.getAttribute("data-updated").replace("{unit}", name);
        }
      })
      .catch(function () { /* the next event tries again */ });
  }

  var stream = new EventSource(results.getAttribute("data-stream"));
  stream.addEventListener("result", function (event) {
    try { changed[JSON.parse(event.data).unit_code] = true; } catch (e) { return; }
    if (!pending) pending = window.setTimeout(refresh, 400);
  });
  stream.addEventListener("reset", function () { stream.close(); window.location.reload(); });
})();
