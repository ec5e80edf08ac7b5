/* Task board: columns by status; dragging a card calls task.update over JSON-RPC; task.* events
   over /ws keep every open board current. */
"use strict";
(() => {
  const message = document.getElementById("board-message");
  const columns = Object.fromEntries([...document.querySelectorAll(".column")].map((c) => [c.dataset.status, c]));
  function counts() {
    for (const column of Object.values(columns)) column.querySelector(".count").textContent = column.querySelectorAll(".task").length;
  }
  function place(task) {
    let card = document.querySelector(`.task[data-id="${CSS.escape(task.id)}"]`);
    if (!card) {
      card = cb.el("div", {class: "task", draggable: true, "data-id": task.id});
      card.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", task.id));
    }
    card.dataset.status = task.status;
    card.replaceChildren(cb.el("div", {class: "mono"}, `${task.id} · p${task.priority}`), cb.el("div", {}, task.text),
      cb.el("div", {class: "muted"}, task.assignedTo ? `→ ${task.assignedTo}` : ""));
    const column = columns[task.status];
    if (column && card.parentElement !== column.querySelector(".cards-list")) column.querySelector(".cards-list").prepend(card);
    counts();
  }
  async function load(id) {
    try { place(await cb.api(`/api/tasks/${encodeURIComponent(id)}/`)); } catch (e) { /* deleted meanwhile */ }
  }
  for (const [status, column] of Object.entries(columns)) {
    column.addEventListener("dragover", (e) => { e.preventDefault(); column.classList.add("over"); });
    column.addEventListener("dragleave", () => column.classList.remove("over"));
    column.addEventListener("drop", async (e) => {
      e.preventDefault(); column.classList.remove("over");
      const id = e.dataTransfer.getData("text/plain");
      const card = document.querySelector(`.task[data-id="${CSS.escape(id)}"]`);
      if (!card || card.dataset.status === status) return;
      try {
        const task = await cb.rpc("task.update", {id, updates: {status}});
        place({...task, assignedTo: task.assignedTo});
        message.textContent = `${id} → ${status}`;
      } catch (err) {
        message.textContent = `${id}: ${err.message}`;
      }
    });
  }
  document.getElementById("new-task").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = document.getElementById("new-text").value.trim();
    if (!text) return;
    try {
      const task = await cb.rpc("task.create", {text, priority: Number(document.getElementById("new-priority").value)});
      message.textContent = `created ${task.id}`; document.getElementById("new-text").value = "";
    } catch (err) { message.textContent = err.message; }
  });
  cb.api("/api/tasks/?page_size=500").then((page) => page.results.reverse().forEach(place));
  cb.live({patterns: ["task.*"], onEvent: (frame) => {
    const p = (frame.data && frame.data.payload) || {}, id = p.id || p.taskId;
    if (!id) return;
    if (frame.event === "task.deleted") {
      const card = document.querySelector(`.task[data-id="${CSS.escape(id)}"]`);
      if (card) { card.remove(); counts(); }
    } else {
      load(id);
    }
  }});
})();
