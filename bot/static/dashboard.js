// The dashboard's pages refresh themselves in place while something moves (<body data-refresh="3">):
// the page is fetched again and its <main> swapped in, unless someone is using a form on it (focus
// in a form, something typed, a <details> opened), so nothing typed is lost. Without JavaScript
// the pages work the same, refreshed by hand.
(() => {
  "use strict";
  const seconds = Number(document.body.dataset.refresh || 0);
  if (!seconds) return;
  let typed = false;
  document.addEventListener("input", () => { typed = true; });
  const busy = () => {
    const active = document.activeElement;
    return typed || (active && active.closest("form")) || document.querySelector("main details[open]");
  };
  const refresh = async () => {
    if (busy() || document.hidden) return;
    let response;
    try {
      response = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    } catch (e) {
      return; // offline for a moment: try again at the next tick
    }
    if (!response.ok) return; // signed out, or the database away: the next reload by hand says why
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = next.querySelector("main");
    if (!main || busy()) return;
    const current = document.querySelector("main");
    if (current.innerHTML !== main.innerHTML) current.innerHTML = main.innerHTML;
    if (!next.body.dataset.refresh) { clearInterval(timer); delete document.body.dataset.refresh; }
  };
  const timer = setInterval(refresh, seconds * 1000);
})();
