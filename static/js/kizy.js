/* Kizy page behaviour shared by every page. No build step, no dependencies.
 *
 * Everything here is an enhancement: dropdowns are <details> and forms are plain forms, so the
 * site works without JavaScript. This module adds:
 *  - dropdowns close on outside click / Escape, and only one is open at a time;
 *  - `<form data-confirm="…">` asks before submitting (destructive actions);
 *  - `[data-dismiss]` buttons close their `.alert`;
 *  - `Kizy.toast(message, {level, title, timeout})` for live pages (studio, training).
 */
(function () {
  "use strict";

  function closeDropdowns(except) {
    document.querySelectorAll("details.dropdown[open]").forEach(function (el) {
      if (el !== except) el.removeAttribute("open");
    });
  }

  document.addEventListener("click", function (event) {
    var inside = event.target.closest("details.dropdown");
    closeDropdowns(inside);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details.dropdown[open]");
    if (open) {
      open.removeAttribute("open");
      var summary = open.querySelector("summary");
      if (summary) summary.focus();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (!button) return;
    var target = button.closest(".alert, .toast");
    if (target) dismiss(target);
  });

  function dismiss(el) {
    el.classList.add("is-leaving");
    window.setTimeout(function () { el.remove(); }, 200);
  }

  function toastStack() {
    var stack = document.getElementById("toast-stack");
    if (!stack) {
      stack = document.createElement("div");
      stack.id = "toast-stack";
      stack.className = "toast-stack";
      stack.setAttribute("aria-live", "polite");
      document.body.appendChild(stack);
    }
    return stack;
  }

  /* Show a transient notice. level: "info" | "success" | "warning" | "error". */
  function toast(message, options) {
    options = options || {};
    var level = options.level || "info";
    var el = document.createElement("div");
    el.className = "toast toast-" + level;
    el.setAttribute("role", level === "error" ? "alert" : "status");
    var body = document.createElement("div");
    body.className = "toast-body";
    if (options.title) {
      var title = document.createElement("strong");
      title.className = "toast-title";
      title.textContent = options.title;
      body.appendChild(title);
    }
    body.appendChild(document.createTextNode(message));
    var close = document.createElement("button");
    close.type = "button";
    close.className = "alert-close";
    close.setAttribute("data-dismiss", "");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    el.appendChild(body);
    el.appendChild(close);
    toastStack().appendChild(el);
    var timeout = options.timeout === undefined ? 5000 : options.timeout;
    if (timeout) window.setTimeout(function () { if (el.isConnected) dismiss(el); }, timeout);
    return el;
  }

  window.Kizy = window.Kizy || {};
  window.Kizy.toast = toast;
})();
