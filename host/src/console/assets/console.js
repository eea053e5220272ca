// twinsync console: the only script, and optional. Pages that ask for it (the overview)
// reload themselves every few seconds while the tab is visible.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (seconds > 0) {
    setInterval(function () {
      if (document.visibilityState === "visible") {
        window.location.reload();
      }
    }, seconds * 1000);
  }
})();
