// Collector page: READY tasks, pick up, teleop start/stop, live recorder status. Vanilla JS.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const REFRESH_MS = 1000;
  const ACTIVE = ["READY", "ASSIGNED"];
  let busy = false;        // a command is in flight: do not double-send
  let recordingTask = null;

  const collectorInput = $("#collector-id");
  collectorInput.value = localStorage.getItem("axon.collector_id") || "";
  collectorInput.addEventListener("change", () => localStorage.setItem("axon.collector_id", collectorInput.value.trim()));

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body ? { "content-type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "the edge agent is unreachable (" + err.message + ")");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { data = { detail: response.statusText }; }
    if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
    return data;
  }

  // From another machine the agent wants the robot's collector PIN: the login sets an HttpOnly cookie.
  $("#pin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#pin-error").textContent = "";
    try {
      await api("POST", "/collector/login", { pin: $("#pin").value });
      $("#pin").value = "";
      $("#pin-card").hidden = true;
      refresh();
    } catch (err) { $("#pin-error").textContent = err.message; }
  });

  function explain(err) {
    switch (err.status) {
      case 0: return "Edge agent unreachable: " + err.message;
      case 401: $("#pin-card").hidden = false; return "Locked: enter the robot's collector PIN.";
      case 503: return "Recorder unreachable: " + err.message;
      case 502: return "Recorder refused the command: " + err.message;
      case 409: return "Refused: " + err.message;
      case 404: return "Unknown task: " + err.message;
      case 422: return "Invalid request: " + err.message;
      default: return "Error " + err.status + ": " + err.message;
    }
  }

  function showMessage(text, kind) {
    const box = $("#message");
    box.className = "message " + (kind || "error");
    box.textContent = text;
    box.hidden = false;
  }
  function clearMessage() { $("#message").hidden = true; $("#message").textContent = ""; }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k === "onclick") node.addEventListener("click", v);
      else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  const chips = (items) => el("span", { class: "chips" }, ...(items || []).map((t) => el("span", {}, t)));
  const badge = (status) => el("span", { class: "badge " + status }, status);
  const fmtSeconds = (s) => {
    if (s == null) return "–";
    s = Math.max(0, Math.floor(s));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

  async function command(label, method, path, body) {
    if (busy) return;
    busy = true;
    document.body.classList.add("busy");
    try {
      await api(method, path, body);
      clearMessage();
      showMessage(label, "info");
    } catch (err) {
      showMessage(explain(err), "error");
    } finally {
      busy = false;
      document.body.classList.remove("busy");
      refresh();
    }
  }

  function pickup(taskId) {
    const collector = collectorInput.value.trim();
    if (!collector) {
      showMessage("Enter your collector id (top right) before picking up a task.", "error");
      collectorInput.focus();
      return;
    }
    localStorage.setItem("axon.collector_id", collector);
    command("Picked up " + taskId + " as " + collector + ".", "POST", "/tasks/" + encodeURIComponent(taskId) + "/pickup", { collector_id: collector });
  }
  const teleop = (taskId, cmd) =>
    command((cmd === "start" ? "Recording " : "Stopped ") + taskId + ".", "POST", "/teleop", { task_id: taskId, command: cmd });

  $("#stop-btn").addEventListener("click", () => { if (recordingTask) teleop(recordingTask, "stop"); });

  let lastTasksKey = "";
  function renderTasks(tasks) {
    // Re-render only on change, so a button never vanishes under the collector's finger.
    const key = JSON.stringify([tasks, busy, recordingTask]);
    if (key === lastTasksKey) return;
    lastTasksKey = key;
    const ready = tasks.filter((t) => ACTIVE.includes(t.status))
      .sort((a, b) => (b.priority - a.priority) || a.task_id.localeCompare(b.task_id));
    const body = $("#ready-tasks tbody");
    body.replaceChildren(...ready.map((t) => el("tr", { "data-task-id": t.task_id, "data-status": t.status },
      el("td", {}, t.task_id),
      el("td", {}, t.scene),
      el("td", {}, t.sub_scene || "–"),
      el("td", {}, chips(t.skills)),
      el("td", { class: "num" }, t.duration_seconds == null ? "–" : t.duration_seconds + " s"),
      el("td", { class: "opt" }, chips(t.topics)),
      el("td", {}, badge(t.status), t.data_collector_id ? el("div", { class: "muted" }, t.data_collector_id) : ""),
      el("td", {},
        t.status === "READY" ? el("button", { class: "pickup", onclick: () => pickup(t.task_id), disabled: busy }, "Pick up") : "",
        el("button", { class: "start big ok", onclick: () => teleop(t.task_id, "start"), disabled: busy || !!recordingTask }, "▶ Start")),
    )));
    $("#ready-empty").hidden = ready.length > 0;

    const recent = tasks.filter((t) => !ACTIVE.includes(t.status) && t.status !== "PENDING")
      .sort((a, b) => (b.updated_at || "").localeCompare(a.updated_at || "")).slice(0, 20);
    $("#recent-tasks tbody").replaceChildren(...recent.map((t) => el("tr", { "data-task-id": t.task_id, "data-status": t.status },
      el("td", {}, t.task_id),
      el("td", {}, chips(t.skills)),
      el("td", {}, badge(t.status)),
      el("td", { class: "opt" }, t.data_collector_id || "–"),
      el("td", {}, fmtTime(t.updated_at)),
      el("td", { class: "opt muted" }, t.failure_reason || ""),
    )));
    $("#recent-empty").hidden = recent.length > 0;
  }

  function renderLive(live) {
    const rec = live.recorder;
    const task = live.recording_task;
    recordingTask = task ? task.task_id : null;
    const state = $("#rec-state");
    if (rec.reachable === false) {
      state.className = "badge FAILED";
      state.textContent = "recorder unreachable";
    } else if (task) {
      state.className = "badge recording";
      state.textContent = "● recording";
    } else {
      state.className = "badge";
      state.textContent = rec.is_recording ? "recorder busy" : "idle";
    }
    $("#rec-task").textContent = task ? task.task_id : "";
    $("#rec-elapsed").textContent = task ? fmtSeconds(task.elapsed_seconds) + (task.duration_seconds ? " / " + fmtSeconds(task.duration_seconds) : "") : "–";
    $("#rec-disk").textContent = rec.disk_usage_gb == null ? "–" : rec.disk_usage_gb.toFixed(2) + " GB";
    $("#rec-outbox").textContent = live.outbox_backlog == null ? "–" : String(live.outbox_backlog);
    $("#rec-topics tbody").replaceChildren(...(rec.topics || []).map((t) =>
      el("tr", { "data-topic": t.topic }, el("td", {}, t.topic), el("td", { class: "num" }, String(t.messages)))));
    const problems = [];
    if (rec.reachable === false) problems.push("Recorder unreachable: " + (rec.error || "no answer"));
    if (rec.last_error) problems.push("Recorder last error: " + rec.last_error);
    $("#rec-error").textContent = problems.join(" · ");
    $("#rec-error").className = problems.length ? "message error" : "muted";
    $("#stop-btn").disabled = busy || !task;
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const [tasks, live] = await Promise.all([api("GET", "/tasks"), api("GET", "/collector/live")]);
      $("#robot-id").textContent = live.robot_id;
      $("#agent-state").textContent = "updated " + new Date().toLocaleTimeString();
      renderLive(live);
      renderTasks(tasks.tasks);
    } catch (err) {
      $("#agent-state").textContent = explain(err);
    } finally {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }
  refresh();
})();
