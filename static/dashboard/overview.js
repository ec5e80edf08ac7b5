/* Overview: polls /api/overview/ and draws throughput and error-rate sparklines from counter deltas. */
"use strict";
(() => {
  const history = {throughput: [], errors: []};
  let last = null;
  function spark(id, values, max) {
    const canvas = document.getElementById(id), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const top = Math.max(max || 0, ...values, 1);
    ctx.strokeStyle = "#3b82f6"; ctx.lineWidth = 2; ctx.beginPath();
    values.forEach((v, i) => {
      const x = (i / Math.max(values.length - 1, 1)) * (canvas.width - 4) + 2;
      const y = canvas.height - 4 - (v / top) * (canvas.height - 8);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
  function push(list, v) { list.push(v); if (list.length > 90) list.shift(); }
  async function refresh() {
    let data;
    try { data = await cb.api("/api/overview/"); } catch (e) { document.getElementById("health").textContent = "unreachable"; return; }
    const health = document.getElementById("health");
    health.textContent = data.health.status; health.className = "big " + (data.health.status === "healthy" ? "ok" : "bad");
    document.getElementById("health-detail").textContent =
      `redis ${data.health.redis ? "up" : "down"} · postgres ${data.health.postgres ? "up" : "down"} · ${data.healthyInstances}/${data.instanceCount} instances healthy`;
    document.getElementById("leader").textContent = data.leader || "none";
    const partition = document.getElementById("partition");
    partition.textContent = data.partition.detected ? "DETECTED" : data.partition.recovering ? "recovering" : "none";
    partition.className = "big " + (data.partition.detected ? "bad" : "ok");
    document.getElementById("pending").textContent = data.queues.pending;
    cb.fillTable(document.querySelector("#instances tbody"), data.instances.map((i) => [
      i.id + (i.leader ? " ★" : ""), i.roles.join(", "), `${i.status} / ${i.health}`, cb.age(i.heartbeatAgeMs),
      String(i.load.queueLength), String(i.load.assignedTasks), String(i.load.tasksCompleted)]));
    cb.fillTable(document.querySelector("#queues tbody"), Object.entries(data.queues).map(([k, v]) => [k, String(v)]));
    if (last) {
      const dt = Math.max((data.timestamp - last.timestamp) / 1000, 0.001);
      const ok = data.calls.success - last.calls.success, bad = data.calls.failure - last.calls.failure;
      const rate = Math.max(ok + bad, 0) / dt, errors = ok + bad > 0 ? (100 * bad) / (ok + bad) : 0;
      push(history.throughput, rate); push(history.errors, errors);
      document.getElementById("throughput-now").textContent = `${rate.toFixed(1)} calls/s`;
      document.getElementById("errors-now").textContent = `${errors.toFixed(1)} %`;
      spark("chart-throughput", history.throughput); spark("chart-errors", history.errors, 100);
    }
    last = data;
  }
  refresh();
  setInterval(refresh, cb.pollMs);
  cb.live({patterns: ["system.*"], onEvent: () => {}});
})();
