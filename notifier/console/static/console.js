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

// Dashboard and timeline keep themselves current (deliveries move from pending to posted) while
// nobody is using a control on them. Without JavaScript, reloading the page does the same.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var every = main && parseInt(main.getAttribute("data-refresh") || "0", 10);
  if (!every || !window.fetch || !window.DOMParser) { return; }
  function busy() {
    var active = document.activeElement;
    return document.visibilityState !== "visible" ||
      (active && active !== document.body && main.contains(active) && active.tagName !== "A");
  }
  setInterval(function () {
    if (busy()) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok && !response.redirected ? response.text() : null; })
      .then(function (html) {
        if (!html || busy()) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        // Server-rendered and escaped, the same markup a reload would show.
        if (fresh) { main.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* keep what is shown; the next tick tries again */ });
  }, every * 1000);
})();
