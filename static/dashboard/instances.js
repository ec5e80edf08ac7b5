/* Instances: polls /api/instances/ (live from Redis, history from PostgreSQL). */
"use strict";
(() => {
  async function refresh() {
    const data = await cb.api("/api/instances/");
    cb.fillTable(document.querySelector("#instances tbody"), data.instances.map((i) => [
      i.id, i.live ? "yes" : "no", i.leader ? "★" : "", i.roles.join(", "), i.status, i.health,
      cb.age(i.heartbeatAgeMs), String(i.load.queueLength), String(i.load.assignedTasks),
      String(i.load.tasksCompleted), String(i.load.tasksFailed), JSON.stringify(i.metadata)]));
  }
  refresh();
  setInterval(refresh, cb.pollMs);
  cb.live({patterns: ["system.*"], onEvent: () => {}});  // connection state in the header
})();
