/* Copy buttons: `<button data-copy="#element-id">Copy</button>` copies the element's text (or value).
 * Uses the asynchronous Clipboard API where the page is a secure context, and falls back to a
 * temporary selection elsewhere (plain-HTTP self-hosted installs). */
(function () {
  "use strict";

  function textOf(target) {
    return ("value" in target && target.value !== undefined ? target.value : target.textContent).trim();
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function flash(button, label, className) {
    // Only the label changes, so an icon inside the button survives.
    var labelEl = button.querySelector("[data-copy-label]") || button;
    if (!labelEl.hasAttribute("data-original")) labelEl.setAttribute("data-original", labelEl.textContent);
    labelEl.textContent = label;
    if (className) button.classList.add(className);
    window.clearTimeout(button._kizyCopyTimer);
    button._kizyCopyTimer = window.setTimeout(function () {
      labelEl.textContent = labelEl.getAttribute("data-original");
      if (className) button.classList.remove(className);
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    copy(textOf(target)).then(
      function () { flash(button, "Copied", "is-done"); },
      function () {
        var range = document.createRange();
        range.selectNodeContents(target);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        flash(button, "Press Ctrl+C");
      }
    );
  });
})();
