/* Kizy training pages. No build step, no dependencies; the pages work without it (plain forms).
 *
 *  - [data-training-upload]: drag and drop, then upload to the API with a progress bar; a refused
 *    upload lists each file at fault and what to fix.
 *  - [data-training-dataset]: re-checks the dataset when the base model or a setting changes, saves
 *    the goal in the background as it is typed (so the generated captions and the checks follow it),
 *    and shows the preset the chosen model gets (full, or quick for demo models and CPU workers) as
 *    the placeholder of the "Advanced" fields, with the device and estimate note.
 *  - [data-training-live]: the loss curve (SVG), progress, samples per checkpoint and the final LoRA,
 *    live over the websocket /ws/trainings/<id>/ (polling the API if the socket is unavailable).
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var TERMINAL = ["succeeded", "failed", "canceled"];

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatBytes(bytes) {
    if (bytes > 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  /* ---- upload ---------------------------------------------------------------------------- */

  function initUpload(form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector("[data-dropzone]");
    var list = form.querySelector("[data-file-list]");
    var progressBox = form.querySelector("[data-upload-progress]");
    var progress = progressBox && progressBox.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    var errors = form.querySelector("[data-upload-errors]");
    var chosen = [];

    function showFiles() {
      list.textContent = "";
      chosen.forEach(function (file) { list.appendChild(el("li", {}, file.name + " · " + formatBytes(file.size))); });
      list.hidden = chosen.length === 0;
    }

    function showErrors(body) {
      var box = errors.querySelector(".alert-body");
      box.textContent = "";
      box.appendChild(el("strong", {}, "Nothing was uploaded. "));
      box.appendChild(document.createTextNode(body.detail || "The upload failed."));
      if (body.errors && body.errors.length) {
        var ul = el("ul");
        body.errors.forEach(function (problem) {
          var li = el("li");
          if (problem.file) li.appendChild(el("strong", {}, problem.file + ": "));
          li.appendChild(document.createTextNode(problem.problem));
          ul.appendChild(li);
        });
        box.appendChild(ul);
      }
      errors.hidden = false;
    }

    input.addEventListener("change", function () { chosen = Array.prototype.slice.call(input.files); showFiles(); });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("is-over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("is-over"); });
    });
    zone.addEventListener("drop", function (event) {
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      chosen = Array.prototype.slice.call(event.dataTransfer.files);
      try { input.files = event.dataTransfer.files; } catch (ignored) { /* old browsers: chosen is used */ }
      showFiles();
    });

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return; // plain form post
      event.preventDefault();
      if (!chosen.length) {
        showErrors({ detail: "Choose or drop some pictures first." });
        return;
      }
      var data = new FormData();
      chosen.forEach(function (file) { data.append("images", file, file.name); });
      var name = form.querySelector("input[name=name]");
      if (name && name.value) data.append("name", name.value);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("data-api"));
      xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
      xhr.setRequestHeader("Accept", "application/json");
      errors.hidden = true;
      progressBox.hidden = false;
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        progress.value = Math.round((e.loaded / e.total) * 100);
        status.textContent = "Uploading… " + formatBytes(e.loaded) + " of " + formatBytes(e.total);
        if (e.loaded === e.total) status.textContent = "Checking the pictures…";
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText || "{}"); } catch (ignored) { body = { detail: xhr.statusText }; }
        if (xhr.status === 201 || xhr.status === 200) {
          status.textContent = "Done.";
          window.location.assign(form.getAttribute("data-next") + body.id);
          return;
        }
        if (button) button.disabled = false;
        progressBox.hidden = true;
        showErrors(body);
      });
      xhr.addEventListener("error", function () {
        if (button) button.disabled = false;
        progressBox.hidden = true;
        showErrors({ detail: "The connection failed during the upload; try again." });
      });
      xhr.send(data);
    });
  }

  /* ---- dataset page: checks and presets -------------------------------------------------- */

  function initDataset(form) {
    var presetsNode = document.getElementById("training-presets");
    var presets = presetsNode ? JSON.parse(presetsNode.textContent) : { families: [] };
    var model = form.querySelector("select[name=model]");
    var list = form.querySelector("[data-checks-list]");
    var start = form.querySelector("[data-testid=start-training]");
    var timer = null;

    var planNote = form.querySelector("[data-plan-note]");
    var saveStatus = form.querySelector("[data-autosave-status]");
    var goalFields = form.querySelectorAll("[data-goal-field]");
    var saveTimer = null;
    var saving = 0;
    var goalDirty = false; // typed but not sent yet: the next check goes through the save
    var sent = 0, shown = 0; // answers arriving out of order never replace a newer one

    function selected() {
      return model && model.options[model.selectedIndex];
    }

    function family() {
      var option = selected();
      return option ? option.getAttribute("data-family") : "sd15";
    }

    function applyPlaceholders() {
      var preset = null;
      var quick = selected() && selected().getAttribute("data-preset") === "quick";
      presets.families.forEach(function (f) { if (f.family === family()) preset = quick ? f.quick_preset : f.preset; });
      if (!preset) return;
      form.querySelectorAll("[data-param]").forEach(function (field) {
        var value = preset[field.getAttribute("data-param")];
        if (field.tagName === "INPUT") field.placeholder = String(value);
        else if (field.options.length) {
          field.options[0].textContent = "Preset (" + (value === true ? "on" : value === false ? "off" : value) + ")";
        }
      });
    }

    function levelClass(level) {
      return { ok: "badge-success", error: "badge-danger", warning: "badge-warning" }[level] || "badge-info";
    }

    function render(result, seq) {
      if (seq !== undefined) {
        if (seq < shown) return;
        shown = seq;
      }
      list.textContent = "";
      result.checks.forEach(function (check) {
        var li = el("li", { "class": "training-check is-" + check.level, "data-check": check.id });
        li.appendChild(el("span", { "class": "badge " + levelClass(check.level) }, check.level));
        var text = el("span");
        text.appendChild(el("strong", {}, check.title + ". "));
        text.appendChild(document.createTextNode(check.message));
        li.appendChild(text);
        list.appendChild(li);
      });
      if (result.buckets && result.buckets.length) {
        var li = el("li", { "class": "training-check is-info", "data-check": "buckets-preview" });
        li.appendChild(el("span", { "class": "badge badge-outline" }, "shapes"));
        var span = el("span");
        result.buckets.forEach(function (b) {
          span.appendChild(el("span", { "class": "training-bucket" }, b.width + "×" + b.height + " · " + b.count));
        });
        li.appendChild(span);
        list.appendChild(li);
      }
      var flagged = {};
      result.checks.forEach(function (check) {
        if (check.level === "warning" || check.level === "error") check.items.forEach(function (id) { flagged[id] = true; });
      });
      form.querySelectorAll("[data-item]").forEach(function (figure) {
        figure.classList.toggle("is-flagged", !!flagged[figure.getAttribute("data-item")]);
      });
      if (start && model) start.disabled = !result.ok;
      if (planNote && result.plan) planNote.textContent = result.plan.note;
      var heading = form.querySelector("[data-checks-for]");
      if (heading && result.resolution) {
        heading.textContent = "For " + (result.family_label || "") + " at " + result.resolution + " px.";
      }
    }

    function query() {
      var params = new URLSearchParams();
      if (model && model.value) params.set("model", model.value);
      form.querySelectorAll("[data-param]").forEach(function (field) {
        if (field.value !== "") params.set(field.getAttribute("data-param"), field.value);
      });
      return params.toString();
    }

    /* Captions written from the description follow it as it is typed: the goal is saved in the
     * background (the same PATCH as the API), and the answer carries the new captions and checks.
     * A caption typed on this page and not saved yet is left as it is (Save sends it). */
    function goal() {
      var body = {};
      goalFields.forEach(function (field) {
        if (field.type === "radio") { if (field.checked) body[field.name] = field.value; }
        else body[field.name] = field.value;
      });
      return body;
    }

    function showSaved(text, isError) {
      if (!saveStatus) return;
      saveStatus.textContent = text;
      saveStatus.classList.toggle("text-danger", !!isError);
    }

    function saveGoal() {
      var trigger = form.querySelector("[name=trigger_word]");
      if (trigger && !trigger.checkValidity()) {
        showSaved("Not saved: the trigger word needs 3-40 lowercase letters, digits or _, starting with a letter.", true);
        return false;
      }
      window.clearTimeout(saveTimer);
      goalDirty = false;
      saving += 1;
      var seq = ++sent;
      showSaved("Saving…", false);
      fetch(form.getAttribute("data-api") + "?" + query(), {
        method: "PATCH",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(form) },
        body: JSON.stringify(goal())
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        saving -= 1;
        if (!result.ok) {
          var detail = result.body.detail || Object.keys(result.body).map(function (key) {
            return key + ": " + [].concat(result.body[key]).join(" ");
          }).join(" ");
          showSaved("Not saved: " + detail, true);
          return;
        }
        (result.body.items || []).forEach(function (item) {
          var box = form.querySelector("textarea[name='caption-" + item.id + "']");
          // Generated captions follow the goal; saved edits get a renamed trigger word swapped in.
          if (box && !box.hasAttribute("data-edited")) box.value = item.caption;
        });
        if (result.body.checks) render(result.body.checks, seq);
        if (!saving) showSaved("Saved; the captions follow the description.", false);
      }).catch(function () {
        saving -= 1;
        showSaved("Not saved: the connection failed. Save keeps everything.", true);
      });
    }

    function saveLater() {
      goalDirty = true;
      window.clearTimeout(saveTimer);
      saveTimer = window.setTimeout(saveGoal, 500);
    }

    function refresh() {
      if (goalDirty && saveGoal() !== false) return; // its answer carries the checks for the new goal
      var seq = ++sent;
      fetch(form.getAttribute("data-checks-url") + "?" + query(), {
        credentials: "same-origin", headers: { Accept: "application/json" }
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        if (result.ok) render(result.body, seq);
        else if (window.Kizy && window.Kizy.toast) window.Kizy.toast(result.body.detail || "Check failed", { level: "warning" });
      }).catch(function () { /* keep the server-rendered checks */ });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 300);
    }

    if (form.hasAttribute("data-autosave")) {
      goalFields.forEach(function (field) {
        field.addEventListener(field.type === "radio" ? "change" : "input", saveLater);
      });
      form.querySelectorAll("textarea[name^='caption-']").forEach(function (box) {
        box.addEventListener("input", function () { box.setAttribute("data-edited", ""); });
      });
    }
    if (model) model.addEventListener("change", function () { applyPlaceholders(); refresh(); });
    form.querySelectorAll("[data-param]").forEach(function (field) { field.addEventListener("change", later); });
    applyPlaceholders();
  }

  /* ---- training page: loss curve and live progress --------------------------------------- */

  function movingAverage(points, window) {
    var out = [];
    var sum = 0;
    for (var i = 0; i < points.length; i++) {
      sum += points[i][1];
      if (i >= window) sum -= points[i - window][1];
      out.push([points[i][0], sum / Math.min(i + 1, window)]);
    }
    return out;
  }

  function drawChart(node, state) {
    // Drawn at the element's own pixel size, so the labels are never stretched.
    var width = Math.max(320, Math.round(node.getBoundingClientRect().width) || 640);
    var height = 240, left = 52, right = 14, top = 12, bottom = 26;
    node.setAttribute("viewBox", "0 0 " + width + " " + height);
    while (node.firstChild) node.removeChild(node.firstChild);
    var points = state.loss;
    var total = Math.max(state.total_steps || 1, points.length ? points[points.length - 1][0] : 1);
    if (!points.length) {
      node.appendChild(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", "class": "loss-empty" },
        "The curve appears with the first training step."));
      return;
    }
    var values = points.map(function (p) { return p[1]; });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    if (high - low < 1e-9) { high += 0.5; low -= 0.5; }
    var pad = (high - low) * 0.08;
    low -= pad; high += pad;
    function x(step) { return left + ((step - 1) / Math.max(total - 1, 1)) * (width - left - right); }
    function y(value) { return top + (1 - (value - low) / (high - low)) * (height - top - bottom); }
    for (var i = 0; i <= 4; i++) {
      var v = low + ((high - low) * i) / 4;
      node.appendChild(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), "class": "loss-grid" }));
      node.appendChild(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "class": "loss-label" }, v.toFixed(3)));
    }
    [1, Math.round(total / 2), total].forEach(function (step) {
      node.appendChild(svg("text", { x: x(step), y: height - 8, "text-anchor": "middle", "class": "loss-label" }, String(step)));
    });
    (state.checkpoints || []).forEach(function (checkpoint) {
      node.appendChild(svg("line", { x1: x(checkpoint.step), x2: x(checkpoint.step), y1: top, y2: height - bottom,
        "class": "loss-checkpoint" }));
    });
    function path(list) {
      return list.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
    }
    node.appendChild(svg("polyline", { points: path(points), "class": "loss-raw", "data-points": points.length }));
    var smooth = movingAverage(points, Math.max(3, Math.round(points.length / 25)));
    node.appendChild(svg("polyline", { points: path(smooth), "class": "loss-smooth" }));
  }

  function sampleRow(checkpoint) {
    var row = el("div", { "class": "training-samples-row", "data-checkpoint": checkpoint.step });
    row.appendChild(el("div", { "class": "training-samples-step" }, "Step " + checkpoint.step));
    var grid = el("div", { "class": "training-samples" });
    (checkpoint.samples || []).forEach(function (sample) {
      var link = el("a", { "class": "media-tile", href: sample.url, target: "_blank", rel: "noopener" });
      link.appendChild(el("img", { src: sample.url, alt: sample.prompt, title: sample.prompt + " (seed " + sample.seed + ")" }));
      grid.appendChild(link);
    });
    row.appendChild(grid);
    return row;
  }

  function initLive(section) {
    var dataNode = document.getElementById("training-data");
    if (!dataNode) return;
    var state = JSON.parse(dataNode.textContent);
    var chart = document.querySelector("[data-loss-chart]");
    var badge = document.querySelector("[data-status]");
    var stepNode = section.querySelector("[data-step]");
    var totalNode = section.querySelector("[data-total]");
    var bar = section.querySelector("[data-progress]");
    var note = section.querySelector("[data-live-note]");
    var samples = document.querySelector("[data-samples]");
    var log = document.querySelector("[data-log]");
    var errorBox = document.querySelector("[data-error]");
    var socket = null, pollTimer = null, retries = 0;

    function terminal() { return TERMINAL.indexOf(state.status) !== -1; }

    function showLora(lora) {
      var card = document.querySelector("[data-lora]");
      if (!card || !lora) return;
      card.hidden = false;
      card.querySelector("[data-lora-studio]").href = "/studio?lora=" + encodeURIComponent(lora.id);
      card.querySelector("[data-lora-download]").href = lora.download_url;
      card.querySelector("[data-lora-kohya]").href = lora.kohya_download_url;
    }

    function redraw() {
      drawChart(chart, state);
      stepNode.textContent = state.step;
      totalNode.textContent = state.total_steps;
      bar.max = Math.max(state.total_steps, 1);
      bar.value = state.step;
      badge.textContent = state.status;
      badge.className = "badge status-" + state.status;
      if (state.error) { errorBox.hidden = false; errorBox.querySelector(".alert-body").textContent = state.error; }
      if (terminal()) {
        var cancel = document.querySelector("[data-cancel-form]");
        if (cancel) cancel.hidden = true;
        note.textContent = "";
      }
      if (state.status === "succeeded") showLora(state.lora);
    }

    function addCheckpoint(checkpoint) {
      state.checkpoints = (state.checkpoints || []).filter(function (c) { return c.step !== checkpoint.step; });
      state.checkpoints.push(checkpoint);
      var empty = samples.querySelector("[data-samples-empty]");
      if (empty) empty.remove();
      var existing = samples.querySelector('[data-checkpoint="' + checkpoint.step + '"]');
      if (existing) existing.remove();
      samples.insertBefore(sampleRow(checkpoint), samples.firstChild);
    }

    function replaceAll(payload) {
      state = payload;
      samples.textContent = "";
      (payload.checkpoints || []).forEach(addCheckpoint);
      if (log && payload.logs !== undefined) log.textContent = payload.logs;
      redraw();
    }

    function onEvent(event) {
      if (event.type === "training.snapshot") { replaceAll(event.training); return; }
      if (event.type === "training.progress") {
        var last = state.loss.length ? state.loss[state.loss.length - 1][0] : 0;
        (event.losses || []).forEach(function (p) { if (p[0] > last) state.loss.push(p); });
        state.step = event.step;
        state.total_steps = event.total;
        state.status = event.status || state.status;
      } else if (event.type === "training.checkpoint") {
        addCheckpoint(event);
      } else if (event.type === "training.log") {
        if (log) log.textContent += (log.textContent ? "\n" : "") + event.message;
      } else if (event.type === "training.status") {
        state.status = event.status;
        state.step = event.step;
        if (event.total) state.total_steps = event.total;
        state.error = event.error;
        if (event.lora) state.lora = event.lora;
        if (terminal()) { poll(); }
      }
      redraw();
    }

    function poll() {
      fetch(state.urls.get, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (payload) {
          if (payload) replaceAll(payload);
          if (!terminal() && (!socket || socket.readyState !== WebSocket.OPEN)) pollTimer = window.setTimeout(poll, 3000);
        })
        .catch(function () { pollTimer = window.setTimeout(poll, 5000); });
    }

    function connect() {
      if (!window.WebSocket || terminal()) return;
      var origin = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
      var stream = state.urls.stream;
      var url = stream.charAt(0) === "/" ? origin + stream : stream.replace(/^wss?:\/\/[^/]+/, origin);
      socket = new WebSocket(url);
      socket.addEventListener("open", function () { retries = 0; note.textContent = " · live"; window.clearTimeout(pollTimer); });
      socket.addEventListener("message", function (message) {
        try { onEvent(JSON.parse(message.data)); } catch (ignored) { /* a malformed event changes nothing */ }
      });
      socket.addEventListener("close", function () {
        note.textContent = "";
        if (terminal()) return;
        retries += 1;
        window.clearTimeout(pollTimer);
        poll();
        if (retries < 6) window.setTimeout(connect, Math.min(1000 * Math.pow(2, retries), 15000));
      });
    }

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(function () { drawChart(chart, state); }, 150);
    });
    redraw();
    connect();
    if (!window.WebSocket && !terminal()) poll();
  }

  function init() {
    document.querySelectorAll("[data-training-upload]").forEach(initUpload);
    document.querySelectorAll("[data-training-dataset]").forEach(initDataset);
    document.querySelectorAll("[data-training-live]").forEach(initLive);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
