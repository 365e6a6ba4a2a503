// Sign-in page: the server answers with an HttpOnly session cookie; nothing is kept in the page.
"use strict";
(function () {
  const form = document.getElementById("login"), message = document.getElementById("message");
  const name = document.getElementById("name"), password = document.getElementById("password");
  const next = new URLSearchParams(location.search).get("next") || "/review";
  // Only a path on this site (never "//host" or a scheme): no open redirect.
  const target = /^\/(?!\/)[^\\]*$/.test(next) ? next : "/review";
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.hidden = true;
    const r = await fetch("/api/v1/auth/login", {
      method: "POST", headers: { "content-type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ name: name.value.trim(), password: password.value }),
    });
    if (r.ok) { location.href = target; return; }
    const data = await r.json().catch(() => ({}));
    message.textContent = (data.detail || r.statusText);
    message.hidden = false;
    password.value = "";
  });
})();
