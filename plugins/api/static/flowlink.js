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
    if (!response.ok) throw new Error(detailOf(data) || `${response.status} ${response.statusText}`);
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
})();
