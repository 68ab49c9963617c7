// The member's code page (/me/code): when the code's step ends, fetch the page again and swap
// the new code in, so the page never shows a code that no longer works and need not reload.
// Without JavaScript, the <noscript> refresh in the page's head reloads it instead.
(function () {
  "use strict";
  var box = document.getElementById("code");
  if (!box || !window.fetch || !window.DOMParser) {
    return;
  }

  function secondsLeft(element) {
    var seconds = Number(element.getAttribute("data-seconds-left"));
    return isFinite(seconds) && seconds >= 1 ? seconds : 1;
  }

  function refresh() {
    window
      .fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("signed out or failed");
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("code");
        if (!fresh) {
          throw new Error("no code on the page");
        }
        box.replaceWith(fresh);
        box = fresh;
        window.setTimeout(refresh, secondsLeft(fresh) * 1000);
      })
      .catch(function () {
        window.location.reload();
      });
  }

  window.setTimeout(refresh, secondsLeft(box) * 1000);
})();
