/* Shared helpers of the operator pages: the /api/ reader, JSON-RPC, and the /ws live connection. */
"use strict";
const cb = (() => {
  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(path, options = {}) {
    const response = await fetch(path, {credentials: "same-origin", headers: {"Accept": "application/json", "X-CSRFToken": csrf()}, ...options});
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }
  let rpcId = 0;
  async function rpc(method, params) {
    const response = await fetch("/rpc", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", method, params, id: ++rpcId})});
    const body = await response.json();
    if (body.error) throw new Error(body.error.data || body.error.message);
    return body.result;
  }
  /* A /ws connection that resubscribes after a reconnect (asking for a backfill so no event is lost). */
  function live({patterns, backfill = 0, onEvent}) {
    const state = document.getElementById("ws-state");
    let socket = null, wanted = patterns.slice(), closed = false, delay = 250, everConnected = false;
    function open() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws`);
      socket.onmessage = (msg) => {
        const frame = JSON.parse(msg.data);
        if (frame.type === "connected") {
          delay = 250;
          if (state) { state.textContent = "live"; state.className = "ok"; }
          socket.send(JSON.stringify({action: "subscribe", events: wanted, backfill: everConnected ? 200 : backfill}));
          everConnected = true;
        } else if (frame.type === "event") {
          onEvent(frame);
        } else if (frame.type === "error") {
          console.warn("ws error", frame.error);
        }
      };
      socket.onclose = () => {
        if (state) { state.textContent = "offline"; state.className = "bad"; }
        if (!closed) setTimeout(open, delay = Math.min(delay * 2, 5000));
      };
    }
    open();
    return {
      resubscribe(next, n = 0) {
        if (socket && socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({action: "unsubscribe", events: wanted}));
          socket.send(JSON.stringify({action: "subscribe", events: next, backfill: n}));
        }
        wanted = next.slice();
      },
      close() { closed = true; if (socket) socket.close(); },
    };
  }
  function age(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`;
  }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }
  function fillTable(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
  }
  return {api, rpc, live, age, el, fillTable, pollMs: Number(document.body.dataset.pollMs) || 2000};
})();
