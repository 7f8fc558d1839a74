/* Kizy studio: prompt in, live progress over the websocket, images out. No build step.
 *
 * The page talks to the public API like any other client: POST /api/v1/generations (session cookie +
 * X-CSRFToken), then /ws/generations/<id>/ for events (status, node, step with a preview, log), with a
 * fall-back to polling GET /api/v1/generations/<id> every second when the socket cannot be used.
 * Server data arrives in <script type="application/json" id="studio-config"> (the CSP forbids inline
 * scripts, and JSON is not executed).
 *
 * Also used on a generation's detail page for its Re-run and Vary buttons.
 */
(function () {
  "use strict";

  const TERMINAL = ["succeeded", "failed", "canceled"];
  const STATUS_WORDS = {
    starting: "Starting", processing: "Processing", succeeded: "Done", failed: "Failed", canceled: "Canceled",
  };
  const FIELD_LABELS = {
    prompt: "Prompt", negative_prompt: "Negative prompt", image: "Guide image", strength: "Guide strength",
    model: "Model", loras: "LoRAs", detailers: "Detailers", aspect_ratio: "Aspect ratio", width: "Width",
    height: "Height", num_outputs: "Images", seed: "Seed", steps: "Steps", guidance: "Guidance",
    scheduler: "Scheduler", graph: "Graph",
  };
  const FAMILY_LABELS = { sd15: "SD 1.5", sdxl: "SDXL", flux: "Flux.1", video: "Video", unknown: "Unknown family" };

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function readConfig() {
    const el = document.getElementById("studio-config");
    return el ? JSON.parse(el.textContent) : null;
  }

  function csrfToken() {
    const input = $("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || "The request failed (HTTP " + status + ").");
      this.status = status;
      this.body = body || {};
    }
  }

  /* fetch() with the session cookie and CSRF header; JSON bodies in and out. */
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, { detail: "Kizy could not be reached. Check your connection and try again." });
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = null; }
    }
    if (!response.ok) {
      throw new ApiError(response.status, data && typeof data === "object" ? data
        : { detail: response.status === 404 ? "Not found (HTTP 404)." : "The server answered HTTP " + response.status + "." });
    }
    return data;
  }

  const listOf = (data) => (Array.isArray(data) ? data : (data && (data.results || data.items || data.data)) || []);

  /* The stored (resolved) request of a generation, ready to submit again; `vary` draws a new seed. */
  function rerunBody(record, vary) {
    const body = {};
    Object.keys(record || {}).forEach((key) => {
      if (record[key] !== null && record[key] !== undefined) body[key] = record[key];
    });
    delete body.auto_loras;
    if (body.width && body.height) delete body.aspect_ratio;
    if (Array.isArray(body.loras)) body.loras = body.loras.map((l) => ({ id: l.id, weight: l.weight }));
    if (vary) body.seed = randomSeed();
    return body;
  }

  const randomSeed = () => Math.floor(Math.random() * 4294967295);

  /* --- errors next to the form ------------------------------------------------------------------ */
  function errorLines(errors, prefix) {
    const lines = [];
    if (Array.isArray(errors)) {
      errors.forEach((item, index) => {
        if (typeof item === "string") lines.push([prefix, item]);
        else lines.push(...errorLines(item, prefix ? prefix + " " + (index + 1) : String(index + 1)));
      });
    } else if (errors && typeof errors === "object") {
      Object.keys(errors).forEach((field) => {
        const label = FIELD_LABELS[field] || field.replace(/_/g, " ");
        const name = field === "non_field_errors" || field === "detail" ? prefix : (prefix ? prefix + " · " + label : label);
        if (errors[field] && typeof errors[field] === "object" && !Array.isArray(errors[field]) && errors[field].message) {
          lines.push([name, errors[field].message]);
        } else {
          lines.push(...errorLines(errors[field], name));
        }
      });
    } else if (errors) {
      lines.push([prefix, String(errors)]);
    }
    return lines;
  }

  function showErrors(err, summary) {
    const box = document.getElementById("studio-errors");
    clearErrors();
    const body = (err && err.body) || {};
    let lines = body.errors ? errorLines(body.errors, "") : [];
    if (body.errors && body.errors.graph && Array.isArray(body.errors.graph)) {
      lines = body.errors.graph.map((issue) => ["Node " + (issue.node || "?") + (issue.port ? " · " + issue.port : ""),
        issue.message || issue.code || ""]);
    }
    if (!box) {
      if (window.Kizy && window.Kizy.toast) window.Kizy.toast(err.message, { level: "error" });
      return;
    }
    $("[data-error-summary]", box).textContent = summary || (err.status === 400 ? "Kizy could not start this generation." : err.message);
    const list = $("[data-error-list]", box);
    list.replaceChildren();
    if (!lines.length && err.status === 400) lines = [["", err.message]];
    if (err.status !== 400 && summary) lines = [["", err.message]];
    lines.forEach(([label, message]) => {
      const li = document.createElement("li");
      if (label) {
        const strong = document.createElement("strong");
        strong.textContent = label + ": ";
        li.appendChild(strong);
      }
      li.appendChild(document.createTextNode(message));
      list.appendChild(li);
    });
    box.hidden = false;
    if (body.errors && typeof body.errors === "object" && !Array.isArray(body.errors)) {
      Object.keys(body.errors).forEach((field) => {
        const slot = $('[data-error-for="' + field + '"]');
        if (!slot) return;
        slot.textContent = errorLines(body.errors[field], "").map((l) => l[1]).join(" ");
        slot.hidden = false;
        const wrapper = slot.closest(".field, .studio-section, .studio-prompt");
        if (wrapper) wrapper.classList.add("has-error");
      });
    }
    box.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function clearErrors() {
    const box = document.getElementById("studio-errors");
    if (box) box.hidden = true;
    $$("[data-error-for]").forEach((slot) => { slot.hidden = true; slot.textContent = ""; });
    $$(".has-error").forEach((el) => el.classList.remove("has-error"));
  }

  /* --- detail page: Re-run / Vary ------------------------------------------------------------- */
  function initDetailPage(config) {
    $$("[data-detail-action]").forEach((button) => {
      button.addEventListener("click", async () => {
        button.disabled = true;
        clearErrors();
        try {
          const job = await api("POST", config.urls.generations,
            rerunBody(config.generation.request, button.dataset.detailAction === "vary"));
          window.location.assign(config.urls.studio + "?watch=" + encodeURIComponent(job.id));
        } catch (err) {
          showErrors(err);
          button.disabled = false;
        }
      });
    });
  }

  /* --- the studio page ------------------------------------------------------------------------ */
  function initStudio(config) {
    const form = document.getElementById("studio-form");
    const prompt = document.getElementById("prompt");
    const modelSelect = document.getElementById("model");
    const modelMeta = document.getElementById("model-meta");
    const autoSwitch = document.getElementById("lora-auto");
    const loraList = document.getElementById("lora-list");
    const loraAdd = document.getElementById("lora-add");
    const suggestBox = document.getElementById("suggest-summary");
    const generateButton = document.getElementById("generate");
    const runPanel = document.getElementById("run");
    const results = document.getElementById("results");
    const emptyStartsHidden = document.getElementById("studio-empty").hidden;

    const state = {
      models: [],
      lorasByFamily: {},
      picks: [],           // [{id, name, weight, reason}]
      suggestion: null,
      suggestSeq: 0,
      // A model the person (or the workspace's settings) chose: Auto suggests LoRAs for it, not another model.
      modelChosen: Boolean((config.prefill && config.prefill.model) || config.model || config.default_model_set),
      modelPicked: null,   // the model Auto chose, with its reason
      guide: null,         // {file} | {url, name}
      guideObjectUrl: null,
      run: null,
    };

    /* Models ---------------------------------------------------------------------------------- */
    const STUDIO_FAMILIES = ["sd15", "sdxl", "flux"];
    const runnable = (m) => m.status === "installed" && m.ready !== false;
    const currentModel = () => state.models.find((m) => String(m.id) === modelSelect.value) || null;
    const familyLabel = (family) => FAMILY_LABELS[family] || family || "";

    async function loadModels() {
      try {
        const data = await api("GET", config.urls.models + "?installed=true&limit=100");
        state.models = listOf(data).filter((m) => STUDIO_FAMILIES.includes(m.family));
      } catch (err) {
        modelSelect.replaceChildren(new Option("Models could not be loaded (" + err.message + ")", ""));
        return;
      }
      const usable = state.models.filter(runnable);
      const others = state.models.filter((m) => !runnable(m));
      modelSelect.replaceChildren();
      if (!usable.length) modelSelect.appendChild(new Option("No model installed: the workspace default is used", ""));
      usable.concat(others).forEach((m) => {
        const label = m.name + " · " + (m.family_label || familyLabel(m.family)) + (m.is_demo ? " · demo" : "")
          + (runnable(m) ? "" : " (not installed)");
        const option = new Option(label, m.id);
        option.disabled = !runnable(m);
        option.dataset.family = m.family || "";
        modelSelect.appendChild(option);
      });
      // A stored request's model, else the LoRA's (?lora=), else the workspace default (Settings).
      const wanted = [config.prefill && config.prefill.model, config.model, config.default_model]
        .find((id) => id && usable.some((m) => String(m.id) === String(id)));
      if (wanted) modelSelect.value = String(wanted);
      await onModelChange(false);
    }

    function renderModelMeta() {
      const m = currentModel();
      modelMeta.replaceChildren();
      if (!m) return;
      const family = document.createElement("span");
      family.className = "badge badge-outline";
      family.textContent = m.family_label || familyLabel(m.family);
      modelMeta.appendChild(family);
      if (m.is_demo) {
        const demo = document.createElement("span");
        demo.className = "badge badge-warning";
        demo.dataset.testid = "demo-badge";
        demo.textContent = "demo: random weights";
        modelMeta.appendChild(demo);
      }
    }

    async function onModelChange(resuggest) {
      renderModelMeta();
      const m = currentModel();
      const family = m ? m.family : "";
      const before = state.picks.length;
      if (family) state.picks = state.picks.filter((p) => !p.family || p.family === family);
      if (state.picks.length < before && window.Kizy && window.Kizy.toast) {
        window.Kizy.toast("LoRAs made for another model family were removed.", { level: "warning" });
      }
      await loadLoras(family);
      renderPicks();
      if (resuggest !== false) scheduleSuggest(0);
    }

    /* LoRAs ----------------------------------------------------------------------------------- */
    async function loadLoras(family) {
      if (!(family in state.lorasByFamily)) {
        try {
          const query = "?installed=true&limit=200" + (family ? "&family=" + encodeURIComponent(family) : "");
          state.lorasByFamily[family] = listOf(await api("GET", config.urls.loras + query));
        } catch (err) {
          state.lorasByFamily[family] = [];
        }
      }
      const loras = state.lorasByFamily[family];
      loraAdd.replaceChildren(new Option(loras.length ? "Add a LoRA…" : "No LoRA for this model family", ""));
      loras.forEach((l) => {
        const option = new Option(l.name + (runnable(l) ? "" : " (not installed)"), l.id);
        option.disabled = !runnable(l);
        loraAdd.appendChild(option);
      });
      loraAdd.disabled = !loras.length;
      // Names for picks restored from a stored request (they carry only ids).
      state.picks.forEach((p) => {
        const known = loras.find((l) => String(l.id) === String(p.id));
        if (known && !p.name) p.name = known.name;
      });
    }

    function renderPicks() {
      loraList.replaceChildren();
      state.picks.forEach((pick, index) => {
        const li = document.createElement("li");
        li.className = "studio-lora";
        li.dataset.loraId = pick.id;
        const head = document.createElement("div");
        head.className = "studio-lora-head";
        const name = document.createElement("strong");
        name.textContent = pick.name || pick.id;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-ghost btn-sm btn-icon";
        remove.setAttribute("aria-label", "Remove " + (pick.name || "LoRA"));
        remove.textContent = "\u00d7";
        remove.addEventListener("click", () => {
          state.picks.splice(index, 1);
          setAuto(false, true);
          renderPicks();
        });
        head.append(name, remove);
        li.appendChild(head);
        if (pick.reason) {
          const reason = document.createElement("p");
          reason.className = "studio-lora-reason";
          reason.textContent = pick.reason;
          li.appendChild(reason);
        }
        const row = document.createElement("div");
        row.className = "studio-lora-weight";
        const slider = document.createElement("input");
        slider.type = "range";
        slider.min = "-2";  // the API's range
        slider.max = "2";
        slider.step = "0.05";
        slider.value = String(pick.weight);
        slider.setAttribute("aria-label", "Weight of " + (pick.name || "LoRA"));
        const output = document.createElement("output");
        output.className = "small mono";
        output.textContent = Number(pick.weight).toFixed(2);
        slider.addEventListener("input", () => {
          pick.weight = Number(slider.value);
          output.textContent = pick.weight.toFixed(2);
        });
        slider.addEventListener("change", () => setAuto(false, true));
        row.append(slider, output);
        li.appendChild(row);
        loraList.appendChild(li);
      });
      loraList.hidden = !state.picks.length;
    }

    loraAdd.addEventListener("change", () => {
      const id = loraAdd.value;
      loraAdd.value = "";
      if (!id || state.picks.some((p) => String(p.id) === id)) return;
      if (state.picks.length >= 5) {
        window.Kizy && window.Kizy.toast && window.Kizy.toast("At most 5 LoRAs can be stacked.", { level: "warning" });
        return;
      }
      const family = currentModel() ? currentModel().family : "";
      const lora = (state.lorasByFamily[family] || []).find((l) => String(l.id) === id);
      state.picks.push({ id, name: lora ? lora.name : id, weight: lora && lora.recommended_weight != null ? lora.recommended_weight : 0.8,
        family: lora ? (lora.family || "") : "", reason: "" });
      setAuto(false, true);
      renderPicks();
    });

    /* Auto: the catalog's suggestion, refreshed as the prompt changes. */
    let suggestTimer = null;
    function setAuto(on, becauseEdited) {
      if (autoSwitch.checked === on) return;
      autoSwitch.checked = on;
      $("#lora-auto-help").textContent = on
        ? "Auto picks LoRAs that fit your prompt and says why."
        : becauseEdited ? "Auto is off because you changed the picks; switch it on to let Kizy choose again."
          : "Choose LoRAs yourself, or switch Auto on.";
      if (on) scheduleSuggest(0);
    }

    autoSwitch.addEventListener("change", () => {
      const on = autoSwitch.checked;
      autoSwitch.checked = !on;
      setAuto(on, false);
      if (!on) { suggestBox.replaceChildren(); }
    });

    function scheduleSuggest(delay) {
      window.clearTimeout(suggestTimer);
      if (!autoSwitch.checked) return;
      suggestTimer = window.setTimeout(suggest, delay === undefined ? 450 : delay);
    }

    async function suggest() {
      const text = prompt.value.trim();
      if (!autoSwitch.checked) return;
      if (text.length < 3) {
        state.picks = [];
        renderPicks();
        suggestBox.replaceChildren();
        return;
      }
      const seq = ++state.suggestSeq;
      suggestBox.textContent = "Finding LoRAs for this prompt…";
      let data;
      try {
        data = await api("POST", config.urls.suggest,
          { prompt: text, model: (state.modelChosen && modelSelect.value) || undefined });
      } catch (err) {
        if (seq === state.suggestSeq) suggestBox.textContent = "Suggestions are unavailable (" + err.message + "); Auto still picks when you generate.";
        return;
      }
      if (seq !== state.suggestSeq || !autoSwitch.checked) return;
      state.suggestion = data;
      state.modelPicked = null;
      const recommended = data.model;
      if (!state.modelChosen && recommended && recommended.id && String(recommended.id) !== modelSelect.value
          && state.models.some((m) => String(m.id) === String(recommended.id) && runnable(m))) {
        // Nobody chose a model yet: Auto sets up the whole request, model included.
        modelSelect.value = String(recommended.id);
        renderModelMeta();
        await loadLoras(currentModel().family);
        if (seq !== state.suggestSeq || !autoSwitch.checked) return;
      }
      if (!state.modelChosen && recommended && String(recommended.id) === modelSelect.value) state.modelPicked = recommended;
      if (!state.modelChosen && modelSelect.value) {
        // The request names the selected model, and the server's Auto then picks LoRAs for that model:
        // ask the same question here, so the picks shown are the picks that run.
        try {
          const forModel = await api("POST", config.urls.suggest, { prompt: text, model: modelSelect.value });
          if (seq !== state.suggestSeq || !autoSwitch.checked) return;
          data = { ...forModel, intents: forModel.intents || data.intents };
        } catch (err) { /* keep the first answer */ }
      }
      const loras = (data.loras || []).filter((l) => l.installed !== false).slice(0, 3);
      state.picks = loras.map((l) => ({ id: String(l.id), name: l.name || String(l.id), weight: Number(l.weight != null ? l.weight : 0.8),
        reason: l.reason || "", family: l.family || (currentModel() ? currentModel().family : ""), auto: true }));
      renderPicks();
      renderSuggestSummary(data);
    }

    function renderSuggestSummary(data) {
      suggestBox.replaceChildren();
      const intent = (data.intents || [])[0];
      if (intent) {
        const line = document.createElement("p");
        line.className = "mb-0";
        line.append("Looks like ");
        const strong = document.createElement("strong");
        strong.textContent = intent.name || intent.slug;
        line.appendChild(strong);
        if (intent.score != null) line.append(" (" + Math.round(Number(intent.score) * 100) + "% match)");
        suggestBox.appendChild(line);
      }
      if (!state.picks.length) {
        const none = document.createElement("p");
        none.className = "mb-0 muted";
        none.textContent = "No installed LoRA fits this prompt and model; the base model is used alone.";
        suggestBox.appendChild(none);
      }
      if (state.modelPicked) {
        const line = document.createElement("p");
        line.className = "mb-0";
        line.append("Model: ");
        const strong = document.createElement("strong");
        strong.textContent = state.modelPicked.name;
        line.appendChild(strong);
        if (state.modelPicked.reason) {
          const why = document.createElement("span");
          why.className = "muted";
          why.textContent = " — " + state.modelPicked.reason;
          line.appendChild(why);
        }
        suggestBox.appendChild(line);
      }
      (data.detailers || []).forEach((detailer) => {
        const tip = DETAILER_TIPS[detailer.name || detailer];
        if (!tip || tip.isOn()) return;
        const line = document.createElement("p");
        line.className = "mb-0";
        line.append("Tip: " + tip.label + " ");
        const apply = document.createElement("button");
        apply.type = "button";
        apply.className = "btn btn-link btn-sm";
        apply.textContent = "Turn on";
        apply.addEventListener("click", () => { tip.apply(); line.remove(); });
        line.appendChild(apply);
        if (detailer.reason) {
          const why = document.createElement("span");
          why.className = "muted";
          why.textContent = " — " + detailer.reason;
          line.appendChild(why);
        }
        suggestBox.appendChild(line);
      });
    }

    /* The catalog's detailer names, as the studio's toggles. */
    const upscaleRadio = (value) => $('input[name="upscale"][value="' + value + '"]', form);
    const upscaleTip = {
      label: "Upscale ×2", isOn: () => !upscaleRadio("").checked, apply: () => { upscaleRadio("2").checked = true; },
    };
    const DETAILER_TIPS = {
      "face-detailer": {
        label: "Face fix", isOn: () => document.getElementById("face-fix").checked,
        apply: () => { document.getElementById("face-fix").checked = true; },
      },
      "upscale-2x": upscaleTip,
      "upscale-anime-2x": upscaleTip,
    };

    prompt.addEventListener("input", () => scheduleSuggest());
    modelSelect.addEventListener("change", () => { state.modelChosen = true; onModelChange(true); });

    /* Guide image ----------------------------------------------------------------------------- */
    const drop = document.getElementById("guide-drop");
    const guideInput = document.getElementById("guide-input");
    const guidePreview = document.getElementById("guide-preview");
    const guideEmpty = document.getElementById("guide-empty");
    const guideClear = document.getElementById("guide-clear");

    function setGuide(guide) {
      if (state.guideObjectUrl) URL.revokeObjectURL(state.guideObjectUrl);
      state.guideObjectUrl = null;
      state.guide = guide;
      if (guide && guide.file) {
        state.guideObjectUrl = URL.createObjectURL(guide.file);
        guidePreview.src = state.guideObjectUrl;
      } else if (guide && guide.url) {
        guidePreview.src = guide.url;
      } else {
        guidePreview.removeAttribute("src");
        guideInput.value = "";
      }
      guidePreview.hidden = !guide;
      guideEmpty.hidden = Boolean(guide);
      guideClear.hidden = !guide;
      drop.classList.toggle("has-image", Boolean(guide));
      $$('input[name="controlnet"]').forEach((radio) => {
        if (radio.value) radio.disabled = !guide;
        if (!guide && !radio.value) radio.checked = true;
      });
      $("#controlnet-help").hidden = Boolean(guide);
    }

    function acceptFile(file) {
      if (!file) return;
      if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
        showErrors(new ApiError(400, { errors: { image: ["Guide images must be PNG, JPEG or WebP; this file is " + (file.type || "of an unknown type") + "."] } }));
        return;
      }
      clearErrors();
      setGuide({ file });
    }

    guideInput.addEventListener("change", () => acceptFile(guideInput.files[0]));
    ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("is-over");
    }));
    ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("is-over")));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      acceptFile(event.dataTransfer && event.dataTransfer.files[0]);
    });
    guideClear.addEventListener("click", () => setGuide(null));

    /* Small controls -------------------------------------------------------------------------- */
    document.getElementById("seed-random").addEventListener("click", () => {
      document.getElementById("seed").value = String(randomSeed());
    });
    const strength = document.getElementById("strength");
    strength.addEventListener("input", () => { $("#strength-value").textContent = Number(strength.value).toFixed(2); });
    document.getElementById("errors-close").addEventListener("click", clearErrors);

    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });

    /* Building and sending the request -------------------------------------------------------- */
    const checked = (name) => { const el = $('input[name="' + name + '"]:checked', form); return el ? el.value : ""; };
    const valueOf = (id) => document.getElementById(id).value.trim();

    function buildRequest() {
      const data = new FormData();
      data.append("prompt", prompt.value.trim());
      const negative = valueOf("negative-prompt");
      if (negative) data.append("negative_prompt", negative);
      if (modelSelect.value) data.append("model", modelSelect.value);
      if (autoSwitch.checked) data.append("loras", "auto");
      else data.append("loras", JSON.stringify(state.picks.map((p) => ({ id: p.id, weight: p.weight }))));
      const detailers = [];
      if (checked("upscale")) detailers.push("upscale_x" + checked("upscale"));
      if (document.getElementById("face-fix").checked) detailers.push("face_fix");
      if (state.guide && checked("controlnet")) detailers.push("controlnet_" + checked("controlnet"));
      if (detailers.length) data.append("detailers", detailers.join(","));
      data.append("aspect_ratio", checked("aspect_ratio") || "1:1");
      data.append("num_outputs", checked("num_outputs") || "1");
      ["seed", "steps", "guidance"].forEach((id) => { if (valueOf(id) !== "") data.append(id, valueOf(id)); });
      data.append("scheduler", document.getElementById("scheduler").value);
      if (state.guide) {
        data.append("strength", strength.value);
        if (state.guide.file) data.append("image", state.guide.file, state.guide.file.name || "guide.png");
        // An output of this workspace goes by its storage key: signed links expire, and S3/R2 links are
        // other web addresses the server does not fetch.
        else data.append("image", state.guide.key || state.guide.url);
      }
      return data;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!prompt.value.trim()) {
        showErrors(new ApiError(400, { errors: { prompt: ["Describe what you want to see first."] } }));
        prompt.focus();
        return;
      }
      submit(buildRequest());
    });

    async function submit(body) {
      if (!config.can_generate || (state.run && !state.run.done)) return;
      clearErrors();
      setBusy(true);
      showSending();
      let job;
      try {
        job = await api("POST", config.urls.generations, body);
      } catch (err) {
        setBusy(false);
        runPanel.hidden = true;
        $("#studio-empty").hidden = emptyStartsHidden || results.children.length > 0;
        showErrors(err);
        return;
      }
      watch(job);
    }

    function setBusy(busy) {
      generateButton.disabled = busy || !config.can_generate;
      $("[data-generate-label]", generateButton).textContent = busy ? "Generating…" : "Generate";
      form.classList.toggle("is-busy", busy);
    }

    /* Between the click and the API's answer (validation, and the job row being written). */
    function showSending() {
      stopRun();
      state.run = null;
      runPanel.hidden = false;
      runPanel.dataset.status = "sending";
      runPanel.dataset.generationId = "";
      runPanel.dataset.stepEvents = "0";
      runPanel.dataset.transport = "";
      const badge = $("#run-status");
      badge.className = "badge";
      badge.textContent = "Sending";
      setNodeText("Checking the request…");
      $("#run-step").textContent = "";
      $("#run-progress").value = 0;
      $("#run-percent").textContent = "0%";
      $("#run-preview-box").hidden = true;
      $("#run-cancel").disabled = true;
      $("#studio-empty").hidden = true;
    }

    /* Following a job: websocket first, polling when the socket fails ------------------------- */
    function watch(job) {
      stopRun();
      const run = { id: job.id, request: job.request || {}, done: false, socket: null, pollTimer: null, stepEvents: 0,
        startedAt: Date.now() };
      state.run = run;
      setBusy(true);
      runPanel.hidden = false;
      runPanel.dataset.generationId = job.id;
      runPanel.dataset.stepEvents = "0";
      runPanel.dataset.transport = "";
      $("#run-preview-box").hidden = true;
      $("#run-cancel").disabled = false;
      $("#run-step").textContent = "Queued";
      $("#run-progress").value = 0;
      $("#run-percent").textContent = "0%";
      setNode(job.current_node ? job.current_node.title : "");
      applyState(job.status, job.progress);
      $("#studio-empty").hidden = true;
      if (TERMINAL.includes(job.status)) { finish(job); return; }
      openSocket(run);
      runPanel.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }

    function openSocket(run) {
      let socket;
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      try {
        socket = new WebSocket(scheme + window.location.host + config.urls.stream + run.id + "/");
      } catch (err) {
        startPolling(run);
        return;
      }
      run.socket = socket;
      const openTimer = window.setTimeout(() => { if (socket.readyState !== WebSocket.OPEN) startPolling(run); }, 5000);
      socket.addEventListener("open", () => {
        window.clearTimeout(openTimer);
        if (!run.pollTimer) runPanel.dataset.transport = "websocket";
      });
      socket.addEventListener("message", (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch (err) { return; }
        onEvent(run, event);
      });
      socket.addEventListener("close", () => {
        window.clearTimeout(openTimer);
        if (!run.done && state.run === run) startPolling(run);
      });
    }

    function startPolling(run) {
      if (run.done || run.pollTimer) return;
      runPanel.dataset.transport = "polling";
      if (run.socket) { const socket = run.socket; run.socket = null; try { socket.close(); } catch (err) { /* closed */ } }
      const tick = async () => {
        if (run.done) return;
        try {
          const job = await api("GET", config.urls.generations + "/" + run.id);
          if (run.done) return;
          applyState(job.status, job.progress);
          if (job.current_node) setNode(job.current_node.title);
          if (TERMINAL.includes(job.status)) { finish(job); return; }
        } catch (err) {
          if (err.status === 404) { finish({ id: run.id, status: "failed", error: err.message, outputs: [] }); return; }
        }
        run.pollTimer = window.setTimeout(tick, 1000);
      };
      run.pollTimer = window.setTimeout(tick, 0);
    }

    function onEvent(run, event) {
      if (run.done || (event.id && event.id !== run.id)) return;
      if (event.type === "step") {
        run.stepEvents += 1;
        runPanel.dataset.stepEvents = String(run.stepEvents);
        applyState("processing", event.progress);
        if (event.total) $("#run-step").textContent = "Step " + event.step + " of " + event.total;
        if (event.preview) {
          $("#run-preview").src = event.preview;
          $("#run-preview-box").hidden = false;
        }
      } else if (event.type === "node") {
        if (event.state === "started") {
          setNode(event.title);
          $("#run-step").textContent = "";
        }
        applyState("processing", event.progress);
      } else if (event.type === "status") {
        applyState(event.status, event.progress);
        if (TERMINAL.includes(event.status)) finishFromEvent(run, event);
        else if (event.title) setNode(event.title);
      } else if (event.type === "log" && event.message) {
        $("#run-step").textContent = event.message;
      }
    }

    async function finishFromEvent(run, event) {
      run.done = true;
      let job;
      try {
        job = await api("GET", config.urls.generations + "/" + run.id);
      } catch (err) {
        job = { ...event, request: run.request, outputs: event.outputs || [] };
      }
      run.done = false;
      finish(job);
    }

    function applyState(status, progress) {
      if (status) {
        runPanel.dataset.status = status;
        const badge = $("#run-status");
        badge.className = "badge status-" + status;
        badge.textContent = STATUS_WORDS[status] || status;
      }
      if (typeof progress === "number" && !Number.isNaN(progress)) {
        const bar = $("#run-progress");
        const percent = Math.max(Number(bar.value), Math.round(progress * 100));
        bar.value = percent;
        $("#run-percent").textContent = percent + "%";
      }
    }

    /* The server words the node ("Upscaling ×4") for every client: events, polling and ?watch= alike. */
    function setNode(title) {
      $("#run-node").textContent = title || (state.run && !state.run.done ? "Waiting for a worker…" : "");
    }

    function finish(job) {
      const run = state.run;
      if (!run || run.done) return;
      run.done = true;
      stopRun();
      applyState(job.status, job.status === "succeeded" ? 1 : undefined);
      $("#run-cancel").disabled = true;
      const seconds = ((Date.now() - run.startedAt) / 1000).toFixed(1);
      if (job.status === "succeeded") {
        $("#run-preview-box").hidden = true;  // the finished images replace the step preview
        setNodeText("Finished in " + seconds + " s");
        $("#run-step").textContent = (job.outputs || []).length + " image" + ((job.outputs || []).length === 1 ? "" : "s");
        renderResults(job);
      } else if (job.status === "canceled") {
        setNodeText("Canceled");
        $("#run-step").textContent = "Stopped before it finished";
      } else {
        setNodeText("It did not work");
        $("#run-step").textContent = "";
        showErrors(new ApiError(500, { detail: job.error || "The generation failed." }), "The generation failed.");
      }
      setBusy(false);
      refreshRecent();
    }

    /* The Recent strip, rendered again by the server (thumbnails and signed links) once a run ends. */
    async function refreshRecent() {
      const section = document.getElementById("studio-recent");
      if (!section || !config.urls.recent) return;
      try {
        const response = await fetch(config.urls.recent, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (!response.ok) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("studio-recent");
        if (fresh) document.getElementById("studio-recent").replaceWith(document.importNode(fresh, true));
      } catch (err) { /* the strip stays as it was */ }
    }

    const setNodeText = (text) => { $("#run-node").textContent = text; };

    function stopRun() {
      const run = state.run;
      if (!run) return;
      if (run.socket) { const socket = run.socket; run.socket = null; try { socket.close(); } catch (err) { /* closed */ } }
      if (run.pollTimer) { window.clearTimeout(run.pollTimer); run.pollTimer = null; }
    }

    $("#run-cancel").addEventListener("click", async () => {
      const run = state.run;
      if (!run || run.done) return;
      const button = $("#run-cancel");
      button.disabled = true;
      setNodeText("Canceling…");
      try {
        const job = await api("POST", config.urls.generations + "/" + run.id + "/cancel");
        if (TERMINAL.includes(job.status)) finish(job);
      } catch (err) {
        button.disabled = false;
        showErrors(err, "Kizy could not cancel this generation.");
      }
    });

    /* Results --------------------------------------------------------------------------------- */
    function renderResults(job) {
      const template = document.getElementById("result-template");
      const record = job.request || {};
      const detailUrl = config.urls.detail.replace("00000000-0000-0000-0000-000000000000", job.id);
      const figures = (job.outputs || []).map((file, index) => {
        const figure = template.content.firstElementChild.cloneNode(true);
        figure.dataset.generationId = job.id;
        const img = $("[data-result-img]", figure);
        img.src = file.url;
        img.alt = record.prompt || "Generated image";
        if (file.width) { img.width = file.width; img.height = file.height; }
        $("[data-result-link]", figure).href = file.url;
        const download = $("[data-result-download]", figure);
        download.href = file.download_url || file.url;
        download.setAttribute("download", "kizy-" + String(job.id).slice(0, 8) + "-" + (index + 1) + ".png");
        const seed = typeof record.seed === "number" ? (record.seed + index) % 4294967296 : null;
        $("[data-result-caption]", figure).textContent = [seed !== null ? "Seed " + seed : "",
          file.width ? file.width + "×" + file.height : ""].filter(Boolean).join(" · ");
        $("[data-result-details]", figure).href = detailUrl;
        const rerunnable = Boolean(record.prompt && record.model) && config.can_generate;
        $$("[data-action]", figure).forEach((button) => {
          if (button.dataset.action !== "guide" && !rerunnable) button.hidden = true;
          button.addEventListener("click", () => onResultAction(button.dataset.action, job, file));
        });
        return figure;
      });
      figures.reverse().forEach((figure) => results.prepend(figure));
    }

    function onResultAction(action, job, file) {
      if (action === "guide") {
        setGuide({ url: file.url, key: file.key, name: "Generated image" });
        document.getElementById("guide-drop").scrollIntoView({ block: "nearest", behavior: "smooth" });
        if (window.Kizy && window.Kizy.toast) window.Kizy.toast("The image is now the guide image.", { level: "success" });
        return;
      }
      submit(rerunBody(job.request, action === "vary"));
    }

    /* Starting state -------------------------------------------------------------------------- */
    function prefill(record) {
      prompt.value = record.prompt || "";
      document.getElementById("negative-prompt").value = record.negative_prompt || "";
      const setRadio = (name, value) => {
        const radio = $('input[name="' + name + '"][value="' + value + '"]', form);
        if (radio) radio.checked = true;
      };
      if (record.aspect_ratio) setRadio("aspect_ratio", record.aspect_ratio);
      if (record.num_outputs) setRadio("num_outputs", String(record.num_outputs));
      const detailers = record.detailers || {};
      setRadio("upscale", detailers.upscale ? String(detailers.upscale) : "");
      document.getElementById("face-fix").checked = Boolean(detailers.face_fix);
      if (record.seed != null) document.getElementById("seed").value = String(record.seed);
      if (record.steps) document.getElementById("steps").value = String(record.steps);
      if (record.guidance != null) document.getElementById("guidance").value = String(record.guidance);
      if (record.scheduler) document.getElementById("scheduler").value = record.scheduler;
      if (record.strength != null) { strength.value = String(record.strength); strength.dispatchEvent(new Event("input")); }
      if (Array.isArray(record.loras)) {
        autoSwitch.checked = false;
        $("#lora-auto-help").textContent = "These are the LoRAs of the generation you started from.";
        state.picks = record.loras.map((l) => ({ id: String(l.id), name: "", weight: Number(l.weight), reason: l.reason || "" }));
      }
      if (record.steps || record.guidance != null || record.negative_prompt || (record.scheduler && record.scheduler !== "default")) {
        document.getElementById("advanced").open = true;
      }
    }

    if (config.prefill) prefill(config.prefill);
    else if (config.lora) {
      // Arrived from "Use in the studio": this LoRA, at its default weight, on a model of its family.
      autoSwitch.checked = false;
      $("#lora-auto-help").textContent = "The LoRA you came for is picked; switch Auto on to let Kizy choose instead.";
      state.picks = [{ id: String(config.lora.id), name: config.lora.name, weight: Number(config.lora.weight),
        family: config.lora.family || "", reason: "" }];
    }
    if (config.guide) setGuide({ url: config.guide.url, key: config.guide.key, name: config.guide.name });
    else setGuide(null);
    loadModels().then(() => { if (!config.prefill && !config.lora) scheduleSuggest(0); });
    if (config.watch) watch(config.watch);
    setBusy(Boolean(state.run && !state.run.done));
    window.addEventListener("pagehide", stopRun);

    // A small hook for tests and debugging: the state of the current run.
    window.Kizy = window.Kizy || {};
    window.Kizy.studio = { state, rerunBody };
  }

  function init() {
    const config = readConfig();
    if (!config) return;
    if (document.getElementById("studio-form")) initStudio(config);
    else if (config.generation) initDetailPage(config);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
