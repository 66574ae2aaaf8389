/* The web chat page's script (chat.html): send with a client id, so a retried POST is stored once,
   and poll the conversation to show the bot's reply. Served from /static: the pages need no inline script. */
(() => {
  const form = document.getElementById("compose"), list = document.getElementById("messages");
  const box = form.elements.text, note = document.getElementById("note"), url = form.dataset.messages;
  const uid = () => crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, "0")).join("");
  let pending = null, shown = "";
  const clock = at => at ? new Date(at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) : "";
  const render = messages => {
    const key = JSON.stringify(messages);
    if (key === shown) return;
    shown = key;
    list.replaceChildren(...messages.map(m => {
      const li = document.createElement("li"), text = document.createElement("div");
      const time = document.createElement("time");
      li.className = "msg " + m.role + (m.late ? " late" : "");
      text.className = "text"; text.textContent = m.text;
      time.dateTime = m.at || ""; time.textContent = clock(m.at);
      li.append(text, time);
      return li;
    }));
    if (list.lastElementChild) list.lastElementChild.scrollIntoView({block: "end"});
  };
  const refresh = async () => {
    try {
      const res = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"});
      if (res.ok) render(await res.json());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  };
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    if (!pending || pending.text !== text) pending = {id: uid(), text};
    note.textContent = "Sending…";
    try {
      const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(pending)});
      if (!res.ok) throw new Error("HTTP " + res.status);
      pending = null; box.value = ""; note.textContent = "";
      refresh();
    } catch (e) { note.textContent = "Not sent yet: check your connection and press Send again."; }
  });
  box.addEventListener("keydown", e => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  refresh();
  setInterval(refresh, 1500);
})();
