// Shows the "this page may be out of date" warning when the page is older than data-after-ms.
// A file, not an inline script, so the page's Content-Security-Policy can forbid inline code.
(function () {
  var updated = document.getElementById("updated"), stale = document.getElementById("stale");
  if (!updated || !stale) return;
  if (Date.now() - Date.parse(updated.getAttribute("datetime")) > Number(stale.getAttribute("data-after-ms"))) {
    stale.hidden = false;
  }
})();
