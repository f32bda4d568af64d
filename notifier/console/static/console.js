// Live preview while typing. Without JavaScript the "Preview" button does the same via a full page.
(function () {
  "use strict";
  var form = document.getElementById("composer");
  var target = document.getElementById("previews");
  if (!form || !target || !window.fetch || !window.FormData) { return; }
  var timer = null;
  var seq = 0;
  function refresh() {
    var mine = ++seq;
    var data = new FormData(form);
    data.set("action", "preview");
    target.classList.add("loading");
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST", body: data, credentials: "same-origin", headers: { "Accept": "text/html" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      // The server escaped every user-supplied string in this fragment; it is our own markup.
      if (mine === seq) { target.innerHTML = html; }
    }).catch(function () {
      /* Keep the last good preview; the Preview button still works. */
    }).then(function () { if (mine === seq) { target.classList.remove("loading"); } });
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 350); }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  refresh();
})();
