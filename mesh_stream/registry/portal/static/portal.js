// Portal behaviour shared by every page. No inline scripts anywhere (the CSP forbids them):
// pages mark elements with data-* attributes and this file wires them up.
(function () {
  "use strict";
  // htmx must not inject its indicator <style> (a strict CSP refuses inline styles).
  if (window.htmx) { window.htmx.config.includeIndicatorStyles = false; }
  document.addEventListener("htmx:configRequest", function () {});

  // <button data-copy="#id">: copies the text of the element #id.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
})();
