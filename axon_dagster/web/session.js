// Shared by the control plane's pages: who is signed in, and state-changing requests that carry the
// session's CSRF token (the session itself is an HttpOnly cookie the page never sees).
"use strict";
window.axon = (function () {
  let me = null;
  const meta = document.querySelector('meta[name="csrf-token"]');
  function toSignIn() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }
  async function whoami() {
    if (me) return me;
    const r = await fetch("/api/v1/auth/me", { cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) { toSignIn(); throw new Error("not signed in"); }
    me = await r.json();
    return me;
  }
  async function send(method, path, body) {
    const headers = { "content-type": "application/json" };
    const token = meta ? meta.content : (await whoami()).csrf_token;
    if (token) headers["x-csrf-token"] = token;
    return fetch(path, { method, headers, body: JSON.stringify(body === undefined ? {} : body), credentials: "same-origin", cache: "no-store" });
  }
  async function signOut() {
    await send("POST", "/api/v1/auth/logout");
    location.href = "/login";
  }
  document.addEventListener("click", (e) => { if (e.target && e.target.id === "signout-button") signOut(); });
  return { whoami, send, signOut, toSignIn };
})();
