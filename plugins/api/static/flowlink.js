// Flowlink pages: the few things the server-rendered HTML cannot do by itself. Whether an action is allowed is
// decided on the server (the buttons come disabled, with the reason as their title); here we only call the REST API
// (/flowlink/api/v1, JSON), show its answer, poll while something runs, and reload the page to show the new state.
"use strict";

(() => {
  const body = document.body;
  const API = body.dataset.api;
  const LOGIN = body.dataset.login;
  const FLASH = "flowlink-flash";
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ------------------------------------------------------------ messages

  function say(text, ok = false) {
    const bar = $("#message");
    $(".message-text", bar).textContent = text;
    bar.classList.toggle("ok", ok);
    bar.hidden = false;
  }

  function reloadWith(text) {
    try { sessionStorage.setItem(FLASH, text); } catch (e) { /* storage unavailable: reload without it */ }
    location.reload();
  }

  function showFlash() {
    try {
      const text = sessionStorage.getItem(FLASH);
      if (text) { sessionStorage.removeItem(FLASH); say(text, true); }
    } catch (e) { /* nothing to show */ }
  }

  // ------------------------------------------------------------ the REST API

  function detailOf(data) {
    if (!data || data.detail === undefined) return "";
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail)) {  // FastAPI's validation errors
      return data.detail.map((e) => `${(e.loc || []).slice(1).join(".") || "body"}: ${e.msg}`).join("; ");
    }
    return JSON.stringify(data.detail);
  }

  async function call(method, path, payload) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {  // the API takes state changes as JSON only (its CSRF protection)
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload || {});
    }
    let response;
    try {
      response = await fetch(API + path, options);
    } catch (e) {
      throw new Error(`cannot reach the api-server (${e.message})`);
    }
    if (response.status === 401) {  // the login expired: log in and come back here
      location.href = LOGIN;
      throw new Error("your login expired: log in again");
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const error = new Error(detailOf(data) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.data = data;  // e.g. a draft's problems, each at its YAML path
      throw error;
    }
    return data;
  }

  const path = (...parts) => parts.map(encodeURIComponent).join("/");
  const utc = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "");

  // ------------------------------------------------------------ links into the Airflow UI around the frame

  // The UI shows these pages in a sandboxed iframe that may not navigate the top window; being same-origin, we ask
  // the UI's router to go there instead. Opened on their own, the links simply work.
  function openInAirflow(href) {
    try {
      const top = window.top;
      if (top === window || top.location.origin !== location.origin) return false;
      const state = top.history.state || {};
      top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: (state.idx || 0) + 1 }, "", href);
      top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
      return true;
    } catch (e) {
      return false;
    }
  }

  // Follow the light/dark mode of the Airflow UI around the frame; alone, prefers-color-scheme decides (CSS).
  function followTheme() {
    try {
      if (window.parent === window) return;
      const root = window.parent.document.documentElement;
      const apply = () => {
        const theme = root.classList.contains("dark") ? "dark" : root.classList.contains("light") ? "light" : "";
        if (theme) document.documentElement.dataset.theme = theme;
        else delete document.documentElement.dataset.theme;
      };
      apply();
      new MutationObserver(apply).observe(root, { attributes: true, attributeFilter: ["class"] });
    } catch (e) { /* not same-origin: the media query decides */ }
  }

  // ------------------------------------------------------------ dialogs

  function confirmDialog(text) {
    const dialog = $("#confirm-dialog");
    $(".confirm-text", dialog).textContent = text;
    return new Promise((resolve) => {
      const done = (answer) => { if (dialog.open) dialog.close(); resolve(answer); };
      $("[data-action=confirm-yes]", dialog).onclick = () => done(true);
      $("[data-action=confirm-no]", dialog).onclick = () => done(false);
      dialog.oncancel = () => resolve(false);
      dialog.showModal();
    });
  }

  // ------------------------------------------------------------ deployments: the log window (the tracker)

  let logTimer = null;
  let reloadOnClose = false;

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function badge(state, label) {
    const span = document.createElement("span");
    span.className = `state state-${state}`;
    span.textContent = label || state;
    return span;
  }

  function renderLog(dialog, data) {
    const d = data.deployment;
    const summary = $(".log-summary", dialog);
    summary.replaceChildren(badge(d.status, `${d.action} ${d.status}`));
    for (const text of [`v${d.version} to ${d.environment}`, `try ${d.tries}`, `started ${utc(d.started_at)}`,
      d.status === "pending" ? `wait till ${utc(d.wait_till)}` : `ended ${utc(d.ended_at)}`]) {
      const span = document.createElement("span");
      span.textContent = text;
      summary.append(span);
    }
    const tbody = $(".log-steps", dialog);
    tbody.replaceChildren();
    for (const step of data.steps) {
      const row = tbody.insertRow();
      cell(row, utc(step.at));
      cell(row, step.step);
      row.insertCell().append(badge(step.status));
      cell(row, step.message, "message-cell");
    }
  }

  function openLog(workflow, started = false) {
    const dialog = $("#log-dialog");
    reloadOnClose = reloadOnClose || started;
    $("#log-title", dialog).textContent = `Deployment log of ${workflow}`;
    $(".log-steps", dialog).replaceChildren();
    $(".log-summary", dialog).replaceChildren();
    const note = $(".log-note", dialog);
    note.textContent = "loading…";
    if (!dialog.open) dialog.showModal();
    clearTimeout(logTimer);
    let first = null;
    const tick = async () => {
      if (!dialog.open) return;
      try {
        const data = await call("GET", `/workflows/${path(workflow)}/deployment-log`);
        if (!dialog.open) return;
        renderLog(dialog, data);
        const status = data.deployment.status;
        if (first === null) first = status;
        if (status !== first) reloadOnClose = true;  // it ended while we watched: the table is out of date
        if (status === "pending") {
          note.textContent = "pending: refreshed every second";
          logTimer = setTimeout(tick, 1000);
        } else {
          note.textContent = "the last deployment's log";
        }
      } catch (e) {
        note.textContent = e.message;
        say(e.message);
      }
    };
    tick();
  }

  function setUpLogDialog() {
    const dialog = $("#log-dialog");
    if (!dialog) return;
    dialog.addEventListener("close", () => {
      clearTimeout(logTimer);
      if (reloadOnClose) location.reload();
    });
  }

  async function deploy(button) {
    const workflow = button.dataset.workflow;
    button.disabled = true;
    try {
      await call("POST", "/deployments", { workflow });
      openLog(workflow, true);
    } catch (e) {
      button.disabled = false;
      say(e.message);
    }
  }

  async function undeploy(button) {
    const workflow = button.dataset.workflow;
    if (!(await confirmDialog(`Undeploy ${workflow}? Its agent removes the installed workflow and it stops running.`))) return;
    button.disabled = true;
    try {
      await call("POST", `/workflows/${path(workflow)}/undeploy`, {});
      openLog(workflow, true);
    } catch (e) {
      button.disabled = false;
      say(e.message);
    }
  }

  // ------------------------------------------------------------ environments

  async function changeEnvironment(name, change, done) {
    try {
      await call("PATCH", `/environments/${path(name)}`, change);
      reloadWith(done);
    } catch (e) {
      say(e.message);
      return false;
    }
    return true;
  }

  // ------------------------------------------------------------ resync bucket

  function updateSelection() {
    const count = $$("#bucket input[name=id]:checked").length;
    const shown = $(".selected-count");
    if (shown) shown.textContent = String(count);
  }

  function countsText(counts) {
    const parts = Object.entries(counts || {}).map(([status, n]) => `${n} ${status}`);
    return parts.length ? parts.join(", ") : "no records yet";
  }

  async function resync(section, payload) {
    const workflow = section.dataset.workflow;
    const buttons = $$("button", section);
    buttons.forEach((b) => { b.disabled = true; });
    const progress = $(".progress", section);
    const bar = $("progress", progress);
    const text = $(".progress-text", progress);
    bar.removeAttribute("value");  // indeterminate until the run ends
    progress.hidden = false;
    text.textContent = "starting the resync run…";
    let started;
    try {
      started = await call("POST", `/workflows/${path(workflow)}/resync`, payload);
    } catch (e) {
      progress.hidden = true;
      buttons.forEach((b) => { b.disabled = Boolean(b.dataset.refused); });
      say(e.message);
      return;
    }
    const poll = async () => {
      try {
        const run = await call("GET", `/workflows/${path(workflow)}/runs/${path(started.run_id)}`);
        text.textContent = `resync #${run.resync_id ?? started.resync_id} of ${run.records || started.records} records, `
          + `run ${run.run_id}: ${run.state || "queued"} — ${countsText(run.counts)}`;
        if (run.finished) {
          bar.value = 1;
          reloadWith(`Resync run ${run.run_id} ${run.state}: ${countsText(run.counts)} (of ${run.records} records)`);
          return;
        }
      } catch (e) {
        say(e.message);
      }
      setTimeout(poll, 1500);
    };
    poll();
  }

  // ------------------------------------------------------------ try: a mapping on live samples

  // The samples are fetched once, by a flowlink_try run on the environment's queue, and kept here; every edit of the
  // spec (after a pause in typing) is checked and only the transform runs again on the kept samples.
  const TRY_POLL_MS = 700;
  const TRY_QUIET_MS = 300;
  const TRY_DAG = "flowlink_try";

  const tried = {
    workflow: "",  // the published workflow and version the editor started from ("" for a draft)
    version: null,
    original: "",  // the editor's text as that version: while unchanged, the version itself is tried
    samples: {},  // touchpoint -> the source records fetched (the page keeps them; the server deleted the try)
    outputs: {},  // record key -> its output fields as last shown, to mark what an edit changed
    checked: null,  // the last /tries/check answer
    touchpoint: "",  // the touchpoint chosen
    edit: 0,  // the newest edit's number: answers to older ones are dropped
    timer: null,
  };

  function trySubject() {
    const text = $("#try-editor").value;
    if (tried.workflow && text === tried.original) return { workflow: tried.workflow, version: tried.version };
    return { draft: text };
  }

  function tryIds() {
    const ids = $("#try-ids").value.split(/[\s,;]+/).filter(Boolean);
    return ids.length ? ids : null;
  }

  function tryError(text) {
    const box = $("#try-error");
    box.textContent = text || "";
    box.hidden = !text;
    $("#try-records").classList.toggle("stale", Boolean(text));
  }

  function showProblems(problems) {
    const list = $("#try-problems");
    list.replaceChildren(...problems.map((p) => {
      const li = document.createElement("li");
      li.textContent = p.path ? `${p.path}: ${p.message}` : p.message;
      return li;
    }));
    const valid = $("#try-valid");
    valid.hidden = false;
    valid.classList.toggle("bad", problems.length > 0);
    valid.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? "" : "s"}` : "valid";
    $("#try-records").classList.toggle("stale", problems.length > 0);
  }

  function problemsOf(error) {  // a 400 for a draft that does not validate lists its problems
    const problems = error && error.data && error.data.problems;
    if (Array.isArray(problems) && problems.length) showProblems(problems);
  }

  function refreshTouchpoints(names) {
    const select = $("#try-touchpoint");
    const current = select.value;
    if (!names.length || names.join("\n") === $$("option", select).map((o) => o.value).join("\n")) return;
    select.replaceChildren(...names.map((name) => new Option(name, name, false, name === current)));
    if (!names.includes(current)) touchpointChanged();
  }

  function progress(text, runId, after = "") {
    const line = $("#try-progress");
    line.replaceChildren(text);
    if (runId) {
      const link = document.createElement("a");
      link.href = `${$("#try").dataset.airflow}/dags/${path(TRY_DAG)}/runs/${path(runId)}`;
      link.dataset.airflowLink = "";
      link.textContent = runId;
      line.append(" (run ", link, `)${after}`);
    }
  }

  function valueText(value) {
    if (value === null || value === undefined) return "null";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function fieldList(record, before) {
    const list = document.createElement("dl");
    list.className = "fields";
    for (const [name, value] of Object.entries(record)) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = name;
      dd.textContent = valueText(value);
      if (value === null || value === undefined) dd.classList.add("muted");
      if (before && valueText(before[name]) !== valueText(value)) {  // what this edit changed
        dt.classList.add("changed");
        dd.classList.add("changed");
      }
      list.append(dt, dd);
    }
    return list;
  }

  function requestList(requests) {
    const box = document.createDocumentFragment();
    for (const r of requests) {
      const item = document.createElement("details");
      item.className = "try-request-item";
      const summary = document.createElement("summary");
      const code = document.createElement("code");
      code.textContent = r.target === "rest" ? `${r.method} ${r.where}` : `${r.method} into ${r.where}`;
      summary.append(code);
      const body = document.createElement("pre");
      body.textContent = JSON.stringify(r.body, null, 2);
      item.append(summary);
      if (r.note) {
        const note = document.createElement("div");
        note.className = "muted small";
        note.textContent = r.note;
        item.append(note);
      }
      item.append(body);
      box.append(item);
    }
    return box;
  }

  function renderTrial(trial, edited) {
    $("#try-xslt").textContent = trial.stylesheet;
    $("#try-xslt-of").textContent = `${trial.touchpoint}, ${trial.version ? `v${trial.version}` : "draft"}`;
    const counts = {};
    for (const r of trial.records) counts[r.status] = (counts[r.status] || 0) + 1;
    $("#try-summary").textContent = [`${trial.source}, ${trial.chosen}`,
      ...Object.entries(counts).map(([status, n]) => `${n} ${status}`)].join(" · ");
    const before = edited ? tried.outputs : {};
    tried.outputs = {};
    const tbody = $("#try-records tbody");
    tbody.replaceChildren();
    for (const r of trial.records) {
      const row = tbody.insertRow();
      row.className = `try-record try-${r.status}`;
      row.dataset.key = r.key;
      cell(row, r.key, "try-key strong");
      const status = row.insertCell();
      status.className = "try-status";
      status.append(badge(r.status === "ready" ? "success" : r.status, r.status));
      if (r.step) {
        const step = document.createElement("div");
        step.className = "muted small";
        step.textContent = `at ${r.step}`;
        status.append(step);
      }
      const source = row.insertCell();
      source.className = "try-source";
      if (r.source) source.append(fieldList(r.source));
      else source.textContent = "not read";
      const output = row.insertCell();
      output.className = "try-output";
      const old = before[r.key];
      (r.output || []).forEach((out, i) => output.append(fieldList(out, old ? old[i] || {} : null)));
      if (!(r.output || []).length) output.classList.add("muted");
      cell(row, r.message || "", "try-message message-cell");
      row.insertCell().className = "try-request";
      row.cells[row.cells.length - 1].append(requestList(r.requests || []));
      tried.outputs[r.key] = r.output || [];
    }
    if (!trial.records.length) {
      const row = tbody.insertRow();
      const td = cell(row, "The source gave no records.", "empty");
      td.colSpan = 6;
    }
    $("#try-records").hidden = false;
    $("#try-records").classList.remove("stale");
  }

  async function fetchSamples(button) {
    const touchpoint = $("#try-touchpoint").value;
    if (!touchpoint) { say("Choose a touchpoint first: the spec needs a valid touchpoint."); return; }
    const text = $("#try-editor").value;
    const payload = { ...trySubject(), touchpoint, limit: Number($("#try-limit").value) || 5, ids: tryIds() };
    button.disabled = true;
    $("#message").hidden = true;
    tryError(null);
    progress("starting a try…");
    let started;
    try {
      started = await call("POST", "/tries", payload);
    } catch (e) {
      button.disabled = false;
      progress("");
      problemsOf(e);
      say(e.message);
      return;
    }
    const where = started.environment ? `${started.environment}'s queue` : "the default queue";
    const since = Date.now();
    const poll = async () => {
      let found;
      try {
        found = await call("GET", `/tries/${path(started.try_id)}`);
      } catch (e) {
        button.disabled = false;
        progress(`The try stopped: ${e.message}`);
        return;
      }
      if (found.status === "queued" || found.status === "running") {
        progress(found.status === "queued" ? `queued on ${where}` : `running on ${where}`, found.run_id, "…");
        setTimeout(poll, TRY_POLL_MS);
        return;
      }
      button.disabled = Boolean(button.dataset.refused);
      const took = `${((Date.now() - since) / 1000).toFixed(1)} s`;
      if (found.status !== "success" || !found.result) {
        progress(`failed after ${took}`, found.run_id);
        $("#try-records").hidden = true;
        $("#try-summary").textContent = "";
        tryError(found.error || "the try failed without a message: see its run in Airflow");
        return;
      }
      const trial = found.result;
      tried.samples[trial.touchpoint] = trial.records.map((r) => r.source).filter((r) => r != null);
      const n = tried.samples[trial.touchpoint].length;
      const fetched = `${n} record${n === 1 ? "" : "s"} of ${trial.touchpoint} fetched on ${where} in ${took}`;
      if ($("#try-touchpoint").value !== trial.touchpoint) {  // another touchpoint was chosen meanwhile
        progress(fetched, found.run_id, `; choose ${trial.touchpoint} to see them`);
        return;
      }
      progress(fetched, found.run_id, "; edit the spec to see the output change");
      renderTrial(trial, false);
      if ($("#try-editor").value !== text) scheduleCheck(0);  // edited while it ran: show the edit's output
    };
    poll();
  }

  async function checkAndTransform() {
    const edit = ++tried.edit;
    const text = $("#try-editor").value;
    let checked;
    try {
      checked = await call("POST", "/tries/check", { draft: text });
    } catch (e) {
      if (edit === tried.edit) say(e.message);
      return;
    }
    if (edit !== tried.edit) return;
    tried.checked = checked;
    showProblems(checked.problems);
    refreshTouchpoints(checked.touchpoints);
    const touchpoint = $("#try-touchpoint").value;
    const records = tried.samples[touchpoint];
    if (!records || !records.length) showPublishedXslt(touchpoint);
    if (checked.problems.length || !records || !records.length) return;
    let trial;
    try {
      trial = await call("POST", "/tries/transform", { ...trySubject(), touchpoint, records });
    } catch (e) {
      if (edit !== tried.edit) return;
      problemsOf(e);
      tryError(e.message);
      return;
    }
    if (edit !== tried.edit) return;
    tryError(null);
    renderTrial(trial, true);
  }

  function showEdited() {
    const of = $(".try-spec-of");
    if (!tried.workflow) return;
    const edited = $("#try-editor").value !== tried.original;
    of.textContent = `${tried.workflow} v${tried.version}${edited ? ", edited" : ""}`;
  }

  function scheduleCheck(delay = TRY_QUIET_MS) {
    clearTimeout(tried.timer);
    tried.timer = setTimeout(checkAndTransform, delay);
  }

  function showPublishedXslt(touchpoint) {  // the chosen version's stylesheet, until samples show the draft's
    const published = $$("template.try-published-xslt").find((t) => t.dataset.touchpoint === touchpoint);
    const edited = $("#try-editor").value !== tried.original;
    $("#try-xslt").textContent = published ? published.content.textContent : "";
    $("#try-xslt-of").textContent = !published ? "the draft's shows with its samples"
      : `${touchpoint}, v${tried.version}${edited ? " (the draft's shows with its samples)" : ""}`;
  }

  function touchpointChanged() {
    const touchpoint = $("#try-touchpoint").value;
    if (touchpoint === tried.touchpoint) return;
    tried.touchpoint = touchpoint;
    const url = new URL(location.href);
    if (touchpoint) url.searchParams.set("touchpoint", touchpoint);
    history.replaceState(history.state, "", url);
    tryError(null);
    if (tried.samples[touchpoint] && tried.samples[touchpoint].length) { scheduleCheck(0); return; }
    showPublishedXslt(touchpoint);
    $("#try-records").hidden = true;
    $("#try-summary").textContent = "";
    progress(`No samples of ${touchpoint || "this touchpoint"} yet: fetch samples.`);
  }

  async function publishDraft(button) {
    const text = $("#try-editor").value;
    button.disabled = true;
    $("#message").hidden = true;
    try {
      const checked = await call("POST", "/tries/check", { draft: text });
      showProblems(checked.problems);
      const name = checked.workflow || tried.workflow;
      if (!name) throw new Error("the draft names no workflow: give it a name: line first");
      const done = await call("POST", `/workflows/${path(name)}/publish`, { spec: text });
      say(done.created ? `published ${done.workflow} v${done.version}` : `unchanged: same as v${done.version}`, true);
      adoptVersion(done.workflow, done.version, text);
    } catch (e) {
      problemsOf(e);
      say(e.message);
    } finally {
      button.disabled = Boolean(button.dataset.refused);
    }
  }

  function adoptVersion(workflow, version, text) {  // the editor now holds that published version
    if (workflow !== tried.workflow || version !== tried.version) {  // the stylesheets of the old version
      $$("template.try-published-xslt").forEach((t) => t.remove());
    }
    tried.workflow = workflow;
    tried.version = version;
    tried.original = text;
    const workflows = $("#try-workflow");
    if (!$$("option", workflows).some((o) => o.value === workflow)) {
      $$("option", workflows).filter((o) => !o.value).forEach((o) => o.remove());
      workflows.append(new Option(workflow, workflow));
    }
    workflows.value = workflow;
    const versions = $("#try-version");
    if (!$$("option", versions).some((o) => o.value === String(version))) {
      $$("option", versions).forEach((o) => { o.textContent = `v${o.value}`; });
      versions.prepend(new Option(`v${version} (latest)`, String(version)));
    }
    versions.disabled = false;
    versions.value = String(version);
    showEdited();
  }

  function openTried(version) {
    const url = new URL(location.href);
    url.search = "";
    url.searchParams.set("workflow", $("#try-workflow").value);
    if (version) url.searchParams.set("version", version);
    if (version && $("#try-touchpoint").value) url.searchParams.set("touchpoint", $("#try-touchpoint").value);
    location.href = url.toString();
  }

  function setUpTry() {
    const section = $("#try");
    if (!section) return;
    const editor = $("#try-editor");
    tried.workflow = section.dataset.workflow;
    tried.version = section.dataset.version ? Number(section.dataset.version) : null;
    tried.original = editor.value;
    tried.touchpoint = $("#try-touchpoint").value;
    editor.addEventListener("input", () => { showEdited(); scheduleCheck(); });
    editor.addEventListener("keydown", (event) => {  // Tab indents (two spaces); Escape, then Tab, leaves
      if (event.key !== "Tab" || event.shiftKey || editor.readOnly || editor.dataset.escaped) return;
      event.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      showEdited();
      scheduleCheck();
    });
    editor.addEventListener("keyup", (event) => { if (event.key === "Escape") editor.dataset.escaped = "1"; });
    editor.addEventListener("blur", () => { delete editor.dataset.escaped; });
    $("#try-touchpoint").addEventListener("change", touchpointChanged);
    $("#try-workflow").addEventListener("change", () => openTried(null));
    $("#try-version").addEventListener("change", (event) => openTried(event.target.value));
    $("form.try-controls").addEventListener("submit", (event) => {  // Enter in a field fetches, as the button
      event.preventDefault();
      const button = $("[data-action=try-fetch]");
      if (!button.disabled) fetchSamples(button);
    });
    section.addEventListener("click", (event) => {
      const el = event.target.closest("[data-action]");
      if (!el || el.disabled) return;
      if (el.dataset.action === "try-fetch") fetchSamples(el);
      else if (el.dataset.action === "try-publish") publishDraft(el);
    });
    if (!editor.readOnly && editor.value) scheduleCheck(0);  // its problems and touchpoints, at once
  }

  // ------------------------------------------------------------ wiring

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-airflow-link]");
    if (link) {
      if (openInAirflow(link.getAttribute("href"))) event.preventDefault();
      return;
    }
    const el = event.target.closest("[data-action]");
    if (!el || el.disabled) return;
    switch (el.dataset.action) {
      case "close-message": $("#message").hidden = true; break;
      case "close-dialog": el.closest("dialog").close(); break;
      case "show-log": event.preventDefault(); openLog(el.dataset.workflow); break;
      case "deploy": deploy(el); break;
      case "undeploy": undeploy(el); break;
      case "env-primary":
        changeEnvironment(el.dataset.environment, { primary: true }, `${el.dataset.environment} is now the primary environment`);
        break;
      case "resync-selected": {
        const ids = $$("#bucket input[name=id]:checked").map((box) => box.value);
        if (!ids.length) { say("Check the records to resync first."); break; }
        const section = el.closest(".resync");
        resync(section, { touchpoint: section.dataset.touchpoint, ids });
        break;
      }
      case "resync-failed": {
        const section = el.closest(".resync");
        resync(section, { touchpoint: section.dataset.touchpoint, failed: true });
        break;
      }
      case "resync-unprocessed": {
        const section = el.closest(".resync");
        resync(section, { touchpoint: section.dataset.touchpoint, unprocessed: true });
        break;
      }
      default: break;
    }
  });

  document.addEventListener("change", async (event) => {
    const el = event.target;
    if (el.dataset.action === "select-all") {
      $$("#bucket input[name=id]").forEach((box) => { if (!box.disabled) box.checked = el.checked; });
      updateSelection();
    } else if (el.name === "id") {
      updateSelection();
    } else if (el.dataset.action === "env-enabled") {
      const name = el.dataset.environment;
      const ok = await changeEnvironment(name, { enabled: el.checked }, `${name} ${el.checked ? "enabled" : "disabled"}`);
      if (!ok) el.checked = !el.checked;
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.action !== "env-timeout") return;
    event.preventDefault();
    const name = form.dataset.environment;
    const minutes = Number(form.elements.pending_timeout.value);
    changeEnvironment(name, { pending_timeout: minutes }, `pending timeout of ${name}: ${minutes} minutes`);
  });

  followTheme();
  setUpLogDialog();
  showFlash();
  updateSelection();
  setUpTry();
})();
