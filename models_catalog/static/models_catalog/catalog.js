/* The catalog's Install buttons: POST /api/v1/<kind>/<id>/install with the session, then poll the
 * entry's detail (its `install` field) and show the download's progress until it ends.
 * Without JavaScript the same form posts to the page, which queues the install and reloads. */
(function () {
  "use strict";
  var POLL_MS = 1000;

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(form, install, status) {
    var bar = form.querySelector("progress");
    var text = form.querySelector(".catalog-install-status");
    var button = form.querySelector("button");
    var state = status || (install && install.state) || "";
    form.dataset.state = state;
    if (state === "installed") {
      bar.hidden = true;
      button.hidden = true;
      text.textContent = "Installed: ready to use.";
      return true;
    }
    if (state === "failed") {
      bar.hidden = true;
      button.disabled = false;
      button.textContent = "Retry install";
      text.textContent = "Install failed: " + ((install && install.message) || "see the catalog entry.");
      return true;
    }
    bar.hidden = false;
    button.disabled = true;
    button.textContent = "Installing…";
    if (install && install.percent !== null && install.percent !== undefined) {
      bar.value = install.percent;
      text.textContent = install.percent + "%";
    } else {
      bar.removeAttribute("value");
      text.textContent = (install && install.state) || "Queued";
    }
    return false;
  }

  function poll(form) {
    fetch(form.dataset.entryUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (entry) {
        var install = entry.install;
        var done = show(form, install, entry.status === "installed" ? "installed" :
          entry.status === "failed" ? "failed" : null);
        if (!done) window.setTimeout(function () { poll(form); }, POLL_MS);
      })
      .catch(function () { window.setTimeout(function () { poll(form); }, POLL_MS * 3); });
  }

  function install(event) {
    var form = event.currentTarget;
    event.preventDefault();
    show(form, null, "queued");
    fetch(form.dataset.installUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken(form) },
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) {
          show(form, { state: "failed", message: result.body.detail }, "failed");
          return;
        }
        if (!show(form, result.body.install, result.body.status === "installed" ? "installed" : null)) {
          poll(form);
        }
      })
      .catch(function () { show(form, { state: "failed", message: "the server did not answer" }, "failed"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.catalog-install").forEach(function (form) {
      form.addEventListener("submit", install);
      if (form.dataset.state === "installing") poll(form);
    });
  });
})();
