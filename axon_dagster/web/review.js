// Review page: approve / reject a dataset. Signed in, the session is the reviewer (the server
// records it); only the open embedded default asks for a reviewer id.
"use strict";
(function () {
  const reviewer = document.getElementById("reviewer");
  if (reviewer) reviewer.value = localStorage.getItem("axon.reviewer") || "";
  document.querySelectorAll(".card").forEach((card) => {
    const form = card.querySelector(".review-form");
    if (!form) return;
    form.addEventListener("submit", (ev) => ev.preventDefault());
    const error = card.querySelector(".error"), decision = card.querySelector(".decision");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => button.addEventListener("click", async () => {
      error.textContent = "";
      const body = { approve: button.dataset.approve === "true", comment: form.comment.value };
      if (reviewer) {
        const who = reviewer.value.trim();
        if (!who) { error.textContent = "Enter your reviewer id first."; reviewer.focus(); return; }
        localStorage.setItem("axon.reviewer", who);
        body.reviewer = who;
      }
      buttons.forEach((b) => (b.disabled = true));
      try {
        const r = await window.axon.send("POST", "/api/v1/datasets/" + encodeURIComponent(card.dataset.dataset) + "/review", body);
        const data = await r.json().catch(() => ({}));
        if (!r.ok) {
          error.textContent = "Refused (HTTP " + r.status + "): " + (data.detail || r.statusText);
          if (r.status !== 409) buttons.forEach((b) => (b.disabled = false));
          return;
        }
        decision.className = "decision " + data.qc_outcome;
        decision.textContent = "Decided: " + data.qc_outcome + " by " + data.reviewed_by +
          (data.review_comment ? " — " + data.review_comment : "") + ". A review decision is final.";
        form.remove();
      } catch (e) {
        error.textContent = "Could not reach the control plane: " + e;
        buttons.forEach((b) => (b.disabled = false));
      }
    }));
  });
})();
