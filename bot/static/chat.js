/* The web chat page's script (chat.html): send with a client id, so a retried POST is stored once,
   and poll the conversation to show the bot's reply; a typed question's options are buttons (a date:
   a date field) that send the option. Served from /static: the pages need no inline script. */
(() => {
  const form = document.getElementById("compose"), list = document.getElementById("messages");
  const choices = document.getElementById("choices"), options = choices.querySelector(".options");
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
    const last = messages[messages.length - 1];
    showChoices(last && last.role === "assistant" && !closed ? last.question : null);
  };
  const closed = !!document.querySelector(".banner");
  const showChoices = question => {
    choices.hidden = !question;
    if (!question) return options.replaceChildren();
    choices.elements.answers.value = question.key;
    if (question.type === "date") {
      const day = document.createElement("input"), send = document.createElement("button");
      day.type = "date"; day.name = "text"; day.required = true; day.setAttribute("aria-label", "Pick a date");
      send.type = "submit"; send.textContent = "Send the date";
      return options.replaceChildren(day, send);
    }
    options.replaceChildren(...question.options.map(option => {
      const button = document.createElement("button");
      button.type = "submit"; button.name = "text"; button.value = option; button.textContent = option;
      return button;
    }));
  };
  const refresh = async () => {
    try {
      const res = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"});
      if (res.ok) render(await res.json());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  };
  const send = async (text, answers) => {
    if (!pending || pending.text !== text || pending.answers !== answers) pending = {id: uid(), text, answers};
    note.textContent = "Sending…";
    try {
      const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(pending)});
      if (!res.ok) throw new Error("HTTP " + res.status);
      pending = null; note.textContent = "";
      refresh();
      return true;
    } catch (e) { note.textContent = "Not sent yet: check your connection and press Send again."; }
    return false;
  };
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const text = box.value.trim();
    if (text && await send(text, undefined)) box.value = "";
  });
  choices.addEventListener("submit", async event => {
    event.preventDefault();
    const picked = event.submitter && event.submitter.name === "text" ? event.submitter.value
      : (choices.elements.text && choices.elements.text.value) || "";
    if (picked && await send(picked, choices.elements.answers.value)) showChoices(null);
  });
  box.addEventListener("keydown", e => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  refresh();
  setInterval(refresh, 1500);
})();
