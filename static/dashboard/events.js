/* Live events: a pattern filter, pause/resume, an event's JSON on click, correlation id search. */
"use strict";
(() => {
  const tbody = document.querySelector("#events tbody"), detail = document.getElementById("detail");
  const pauseButton = document.getElementById("pause"), pausedCount = document.getElementById("paused-count");
  const frames = new Map();
  let paused = false, searching = false, held = [];
  function row(frame) {
    const env = frame.data || {}, id = env.id || "";
    frames.set(id, frame);
    const corr = (env.metadata && env.metadata.correlationId) || "";
    const time = new Date(env.timestamp || frame.timestamp).toISOString().slice(11, 23);
    const p = (env && typeof env.payload === "object" && env.payload) || {};
    const subject = p.id || p.taskId || p.instanceId || p.sessionId || "";
    const tr = cb.el("tr", {"data-id": id, "data-type": frame.event, "data-subject": String(subject), class: "event-row"},
      cb.el("td", {}, time), cb.el("td", {class: "type"}, frame.event), cb.el("td", {class: "mono"}, String(subject)),
      cb.el("td", {class: "mono"}, id), cb.el("td", {class: "mono"}, corr));
    tr.addEventListener("click", () => {
      for (const r of tbody.querySelectorAll("tr.selected")) r.classList.remove("selected");
      tr.classList.add("selected");
      detail.textContent = JSON.stringify(frame.data, null, 2);
    });
    return tr;
  }
  function show(frame) {
    if (searching) return;
    if (paused) { held.push(frame); pausedCount.textContent = `${held.length} held`; return; }
    tbody.prepend(row(frame));
    while (tbody.rows.length > 500) { const old = tbody.lastElementChild; frames.delete(old.dataset.id); old.remove(); }
  }
  const pattern = document.getElementById("pattern");
  const connection = cb.live({patterns: [pattern.value || "*"], backfill: 50, onEvent: show});
  document.getElementById("filter").addEventListener("submit", (e) => {
    e.preventDefault();
    tbody.replaceChildren(); frames.clear(); held = []; searching = false;
    connection.resubscribe([pattern.value.trim() || "*"], 50);
    history.replaceState(null, "", `?pattern=${encodeURIComponent(pattern.value.trim() || "*")}`);
  });
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) { const queued = held; held = []; pausedCount.textContent = ""; queued.forEach(show); }
  });
  document.getElementById("search").addEventListener("click", async () => {
    const id = document.getElementById("correlation").value.trim();
    if (!id) return;
    searching = true;
    const found = await cb.rpc("events.correlation", {correlationId: id, limit: 500});
    tbody.replaceChildren(...found.events.map((e) => row({type: "event", event: e.type, data: e, timestamp: e.timestamp})));
  });
  document.getElementById("clear").addEventListener("click", () => {
    searching = false; tbody.replaceChildren(); frames.clear();
    connection.resubscribe([pattern.value.trim() || "*"], 50);
  });
})();
