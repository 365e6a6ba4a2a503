// Admin page: review an order's batches (edit before release, approve, reject, add) and search datasets.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const API = "/api/v1";
  const PAGE = 50;
  let searchOffset = 0;

  // Who is signed in decides what the page offers (the server enforces the same roles).
  let me = { kind: "open", role: "admin", name: "" };
  const ready = window.axon.whoami().then((m) => {
    me = m;
    if (m.kind === "open") {  // the open embedded default: nobody is signed in, so name yourself
      $("#actor").hidden = $("label[for=actor]").hidden = false;
      $("#actor").value = localStorage.getItem("axon.admin.actor") || "";
    } else {
      $("#identity").textContent = "Signed in as " + m.name + " (" + m.role + ")";
      $("#identity").dataset.role = m.role;
      $("#signout-button").hidden = m.kind !== "user";
    }
    if (m.role !== "admin") document.querySelectorAll("#dispatch-btn, #add-batch button").forEach((b) => (b.disabled = true));
  });
  const params = new URLSearchParams(location.search);
  if (params.get("order")) $("#order-id").value = params.get("order");

  async function api(method, path, body) {
    let r;
    try {
      r = method === "GET" ? await fetch(API + path, { cache: "no-store", credentials: "same-origin" })
        : await window.axon.send(method, API + path, body);
    } catch (e) { throw new Error("control plane unreachable: " + e.message); }
    if (r.status === 401) window.axon.toSignIn();
    let data = null;
    try { data = await r.json(); } catch (_) { data = { detail: r.statusText }; }
    if (!r.ok) throw new Error((r.status === 409 || r.status === 403 ? "Refused: " : r.status === 401 ? "Not signed in: " : "Error " + r.status + ": ") + ((data && data.detail) || r.statusText));
    return data;
  }
  function say(text, kind) { const m = $("#message"); m.className = "message " + (kind || "error"); m.textContent = text; m.hidden = false; }
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else if (k.startsWith("data-")) n.setAttribute(k, v);
      else if (k === "onclick") n.addEventListener("click", v); else n[k] = v;
    }
    for (const c of kids) n.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return n;
  }
  const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
  // Signed in, the server records the session's principal; only the open default names an actor.
  const actor = () => {
    if (me.kind !== "open") return undefined;
    const a = $("#actor").value.trim();
    if (!a) { $("#actor").focus(); throw new Error("Enter who you are (top right) before changing anything."); }
    localStorage.setItem("axon.admin.actor", a);
    return a;
  };
  const orderId = () => $("#order-id").value.trim();

  async function act(label, fn) {
    // The message appears only after the table is re-read, so what follows acts on fresh rows.
    let text, kind = "info";
    try { const said = await fn(); text = typeof said === "string" ? said : label; } catch (e) { text = e.message; kind = "error"; }
    await loadOrder(false);
    say(text, kind);
  }

  function batchRow(b) {
    const dis = !b.editable || me.role !== "admin";
    const skills = el("input", { class: "skills", value: b.skills.join(", "), disabled: dis, size: 16 });
    const count = el("input", { class: "count", type: "number", min: 1, value: b.task_count, disabled: dis, style: "width:5rem" });
    const dur = el("input", { class: "duration", type: "number", min: 1, step: "any", value: b.duration_seconds, disabled: dis, style: "width:6rem" });
    const topics = el("input", { class: "topics", value: b.topics.join(", "), disabled: dis, size: 28 });
    const counts = Object.entries(b.task_counts).filter(([, n]) => n > 0).map(([s, n]) => s + " " + n).join(", ");
    const path = "/batches/" + encodeURIComponent(b.batch_id);
    return el("tr", { "data-batch-id": b.batch_id, "data-review": b.review_status },
      el("td", {}, b.batch_id, b.released ? el("div", { class: "muted" }, "released") : ""),
      el("td", {}, el("span", { class: "badge " + b.review_status }, b.review_status)),
      el("td", {}, skills), el("td", { class: "num" }, count), el("td", { class: "num" }, dur), el("td", {}, topics),
      el("td", { class: "muted" }, counts),
      el("td", {},
        el("button", { class: "save", disabled: dis, onclick: () => act("Saved " + b.batch_id + ".", () => api("PATCH", path, {
          actor: actor(), skills: list(skills.value), task_count: Number(count.value), duration_seconds: Number(dur.value), topics: list(topics.value) })) }, "Save"),
        el("button", { class: "approve ok", disabled: dis || b.review_status === "approved",
          onclick: () => act("Approved " + b.batch_id + ".", () => api("POST", path + "/approve", { actor: actor() })) }, "Approve"),
        el("button", { class: "reject danger", disabled: dis,
          onclick: () => act("Rejected " + b.batch_id + ".", () => api("POST", path + "/reject", { actor: actor() })) }, "Reject")));
  }

  async function loadOrder(clear) {
    const id = orderId();
    if (!id) return;
    try {
      const [policy, batches, audit] = await Promise.all([
        api("GET", "/orders/" + encodeURIComponent(id) + "/review-policy"),
        api("GET", "/orders/" + encodeURIComponent(id) + "/review-batches"),
        api("GET", "/audit?order_id=" + encodeURIComponent(id) + "&limit=200"),
      ]);
      if (clear) $("#message").hidden = true;
      $("#policy").textContent = (policy.auto_approve_batches ? "auto-approves batches" : "batches need approval") + " · template " + policy.recording_template;
      $("#batches tbody").replaceChildren(...batches.map(batchRow));
      $("#audit tbody").replaceChildren(...audit.slice().reverse().map((a) => el("tr", { "data-action": a.action },
        el("td", {}, new Date(a.at).toLocaleString()), el("td", {}, a.actor), el("td", {}, a.action),
        el("td", {}, a.entity_id), el("td", { class: "muted" }, JSON.stringify(a.details)))));
    } catch (e) { say(e.message); }
  }

  $("#order-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadOrder(true); });
  $("#dispatch-btn").addEventListener("click", () => act("Dispatched approved batches.", async () => {
    const r = await api("POST", "/orders/" + encodeURIComponent(orderId()) + "/dispatch", {});
    return "Dispatched " + Object.keys(r.assignments).length + " task(s).";
  }));
  $("#add-batch").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("Batch added.", () => api("POST", "/orders/" + encodeURIComponent(orderId()) + "/batches", {
      actor: actor(), skills: list($("#add-skills").value), task_count: Number($("#add-count").value),
      duration_seconds: Number($("#add-duration").value), topics: list($("#add-topics").value) }));
  });

  async function search() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData($("#search"))) if (String(v).trim()) q.append(k, String(v).trim());
    q.set("limit", PAGE); q.set("offset", searchOffset);
    try {
      const r = await api("GET", "/dataset-search?" + q);
      $("#search-total").textContent = r.total + " dataset(s)" + (r.total ? ", showing " + (r.offset + 1) + "–" + (r.offset + r.datasets.length) : "");
      $("#datasets tbody").replaceChildren(...r.datasets.map((d) => el("tr", { "data-dataset-id": d.dataset_id },
        el("td", {}, d.dataset_id), el("td", {}, d.scene + (d.sub_scene ? " / " + d.sub_scene : "")),
        el("td", {}, d.skills.join(", ")), el("td", {}, el("span", { class: "badge " + d.status }, d.status)),
        el("td", {}, d.qc_outcome ? d.qc_outcome + (d.qc_score != null ? " " + d.qc_score.toFixed(2) : "") : "–"),
        el("td", { class: "muted" }, [d.lineage.order_id, d.lineage.batch_id, d.lineage.robot_id, d.lineage.collector_id].filter(Boolean).join(" › ")),
        d.cloud_uri || !d.last_upload_error ? el("td", {}, d.cloud_uri || "–")
          : el("td", { class: "upload-error", title: d.last_upload_error }, "upload failed: " + d.last_upload_error.slice(0, 120)))));
      $("#prev").disabled = r.offset === 0;
      $("#next").disabled = r.offset + r.datasets.length >= r.total;
    } catch (e) { say(e.message); }
  }
  $("#search").addEventListener("submit", (ev) => { ev.preventDefault(); searchOffset = 0; search(); });
  $("#prev").addEventListener("click", () => { searchOffset = Math.max(0, searchOffset - PAGE); search(); });
  $("#next").addEventListener("click", () => { searchOffset += PAGE; search(); });

  ready.then(() => { if (orderId()) loadOrder(true); });
})();
