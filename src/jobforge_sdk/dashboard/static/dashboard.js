// Auto-refresh without reloading the page: every few seconds (body's data-refresh, in
// seconds; 0 turns it off) fetch the same URL asking for the main region only, and swap
// it in. Skipped while the tab is hidden or a filter field has the focus, so typing is
// never interrupted. No library, no build step.
(function () {
  "use strict";
  var seconds = parseFloat(document.body.getAttribute("data-refresh") || "0");
  var main = document.getElementById("content");
  if (!main || !(seconds > 0)) {
    return;
  }
  var busy = false;

  function editing() {
    var el = document.activeElement;
    return !!el && main.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }

  function refresh() {
    if (busy || document.hidden || editing()) {
      return;
    }
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Dashboard-Fragment": "1" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload(); // the token cookie is gone: show the sign-in page
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null && !editing()) {
          main.innerHTML = html;
          main.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {
        main.setAttribute("data-refresh-error", String(Date.now()));
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
