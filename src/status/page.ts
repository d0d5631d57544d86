// The status page: one self-contained HTML document (inline CSS, inline JS, inline SVG plots; no
// external asset, no CDN). It polls `<status_path>/data` every second and redraws. Each plot
// carries its latest and peak values as data attributes (data-latest, data-peak), read by tests.

export interface PageSettings {
  /** URL path of the JSON samples endpoint. */
  dataPath: string;
  /** URL path of the publish endpoint, in public mode only. */
  publishPath: string | null;
  /** The WebSocket path the "try it" panel connects to. */
  wsPath: string;
  /** The channel of public pub/sub streams ("$pubsub"). */
  pubsubChannel: string;
  version: string;
  nodeId: string;
}

/** JSON embedded in a <script> element: "<" escaped so no value can close the element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c");
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderStatusPage(s: PageSettings): string {
  const tryIt = s.publishPath
    ? `<section id="tryit" data-state="idle" data-received="0">
  <h2>Try it <small>public mode: subscribe to a public stream and publish to it</small></h2>
  <div class="row">
    <label>Stream <input id="stream" value="status-demo" autocomplete="off"></label>
    <button id="subscribe">Subscribe</button>
    <span id="wsstate">not connected</span>
  </div>
  <div class="row">
    <label>Message <input id="message" value="hello" autocomplete="off"></label>
    <button id="publish" disabled>Publish</button>
  </div>
  <ol id="received"></ol>
</section>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>anycable-ts status</title>
<style>
  :root { color-scheme: light dark; --fg: #1d2430; --muted: #6b7380; --bg: #f6f7f9; --card: #fff; --grid: #e3e6ea; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa1ab; --bg: #14171c; --card: #1d2128; --grid: #2c313a; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 14px 20px; display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header span { color: var(--muted); }
  #state.stale { color: #c0392b; }
  main { padding: 0 20px 20px; display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }
  .chart, #tryit { background: var(--card); border-radius: 8px; padding: 10px 12px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  .chart h2, #tryit h2 { font-size: 13px; font-weight: 600; margin: 0 0 4px; display: flex; justify-content: space-between; gap: 8px; }
  .chart h2 .v { font-variant-numeric: tabular-nums; }
  .legend { font-size: 12px; color: var(--muted); display: flex; gap: 10px; flex-wrap: wrap; }
  .legend i { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin-right: 4px; }
  svg { width: 100%; height: 100px; display: block; }
  svg .grid { stroke: var(--grid); stroke-width: 1; }
  .axis { font-size: 10px; color: var(--muted); display: flex; justify-content: space-between; }
  svg polyline { fill: none; stroke-width: 1.6; vector-effect: non-scaling-stroke; }
  #tryit { grid-column: 1 / -1; }
  #tryit small { font-weight: 400; color: var(--muted); }
  #tryit .row { display: flex; gap: 8px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
  #tryit input { font: inherit; padding: 3px 6px; }
  #received { font: 12px ui-monospace, monospace; max-height: 160px; overflow: auto; margin: 6px 0 0; }
</style>
</head>
<body>
<header>
  <h1>anycable-ts status</h1>
  <span>node ${esc(s.nodeId)} · v${esc(s.version)}</span>
  <span id="state">loading…</span>
</header>
<main id="charts">
${tryIt}
</main>
<script id="settings" type="application/json">${scriptJson(s)}</script>
<script>
(() => {
  "use strict";
  const S = JSON.parse(document.getElementById("settings").textContent);
  const key = new URLSearchParams(location.search).get("key");
  const withKey = (p) => (key ? p + "?key=" + encodeURIComponent(key) : p);
  const WINDOW_MS = 5 * 60 * 1000;
  const num = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2));
  const bytes = (v) => {
    const u = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  };
  const CHARTS = [
    { id: "clients", title: "Connections", series: [["clients", "clients_num", "#2f80ed"], ["uniqClients", "clients_uniq_num", "#9b51e0"]] },
    { id: "streams", title: "Streams", series: [["streams", "broadcast_streams_num", "#27ae60"]] },
    { id: "broadcasts", title: "Broadcasts /s", series: [["broadcastsPerSec", "broadcast_msg_total /s", "#f2994a"]] },
    { id: "delivered", title: "Messages /s", series: [["deliveredPerSec", "delivered (server_msg_total /s)", "#eb5757"], ["clientMsgsPerSec", "from clients (client_msg_total /s)", "#56ccf2"]] },
    { id: "rpc", title: "RPC calls /s", series: [["rpcCallsPerSec", "rpc_call_total /s", "#2d9cdb"], ["rpcErrorsPerSec", "errors + timeouts /s", "#c0392b"]] },
    { id: "rpcPending", title: "RPC pending", series: [["rpcPending", "rpc_pending_num", "#6fcf97"]] },
    { id: "slow", title: "Slow-client disconnects", series: [["slowDisconnects", "disconnected_slow_clients_total", "#bb6bd9"]] },
    { id: "mem", title: "Memory", fmt: bytes, series: [["memBytes", "mem_sys_bytes (RSS)", "#828282"]] },
  ];
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 100;
  const root = document.getElementById("charts");
  const tryit = document.getElementById("tryit");
  for (const c of CHARTS) {
    const el = document.createElement("section");
    el.className = "chart";
    el.id = "chart-" + c.id;
    el.dataset.metric = c.series[0][0];
    el.dataset.latest = "0";
    el.dataset.peak = "0";
    const legend = c.series.map(([, label, color]) => '<span><i style="background:' + color + '"></i>' + label + "</span>").join("");
    el.innerHTML = '<h2><span>' + c.title + '</span><span class="v">–</span></h2>' +
      '<div class="axis"><span class="top">max</span></div>' +
      '<svg viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none" role="img" aria-label="' + c.title + '"></svg>' +
      '<div class="axis"><span class="from">−5 min</span><span>now</span></div>' +
      '<div class="legend">' + legend + "</div>";
    root.insertBefore(el, tryit);
    c.el = el;
  }
  const ago = (ms) => (ms >= 60000 ? "−" + Math.round(ms / 60000) + " min" : "−" + Math.round(ms / 1000) + " s");
  function draw(c, samples, now) {
    const fmt = c.fmt || num;
    const svg = c.el.querySelector("svg");
    let max = 0;
    for (const s of samples) for (const [k] of c.series) max = Math.max(max, s[k]);
    const top = max > 0 ? max * 1.1 : 1;
    // The last 5 minutes; while the server is younger, the time it has run (at least a minute).
    const span = samples.length ? Math.min(WINDOW_MS, Math.max(60000, now - samples[0].t)) : WINDOW_MS;
    const x = (t) => ((t - (now - span)) / span) * W;
    const y = (v) => H - 2 - (v / top) * (H - 6);
    let out = "";
    for (const f of [0, 0.5, 1]) {
      const gy = y(max > 0 ? max * f : f);
      out += '<line class="grid" x1="0" x2="' + W + '" y1="' + gy + '" y2="' + gy + '"/>';
    }
    svg.innerHTML = out;
    c.el.querySelector(".top").textContent = "max " + fmt(max);
    c.el.querySelector(".from").textContent = ago(span);
    for (const [k, , color] of c.series) {
      const pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("stroke", color);
      pl.setAttribute("points", samples.map((s) => x(s.t).toFixed(1) + "," + y(s[k]).toFixed(1)).join(" "));
      pl.dataset.series = k;
      svg.appendChild(pl);
    }
    const first = c.series[0][0];
    const latest = samples.length ? samples[samples.length - 1][first] : 0;
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, s[first]);
    c.el.dataset.latest = String(latest);
    c.el.dataset.peak = String(peak);
    c.el.querySelector(".v").textContent = fmt(latest) + (peak > latest ? " (peak " + fmt(peak) + ")" : "");
  }
  const state = document.getElementById("state");
  let failures = 0;
  async function poll() {
    try {
      const res = await fetch(withKey(S.dataPath), { cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      const now = data.now;
      const samples = data.samples.filter((s) => s.t >= now - WINDOW_MS);
      for (const c of CHARTS) draw(c, samples, now);
      failures = 0;
      state.className = "";
      state.textContent = samples.length + " samples · updated " + new Date(now).toLocaleTimeString();
      document.body.dataset.samples = String(samples.length);
    } catch (err) {
      failures++;
      state.className = "stale";
      state.textContent = "cannot load data (" + err.message + ")";
    } finally {
      setTimeout(poll, failures ? Math.min(10000, 1000 * failures) : 1000);
    }
  }
  poll();

  if (!tryit || !S.publishPath) return;
  const $ = (id) => document.getElementById(id);
  const list = $("received");
  let ws = null, identifier = null, received = 0;
  const setState = (st, text) => { tryit.dataset.state = st; $("wsstate").textContent = text; };
  $("subscribe").addEventListener("click", () => {
    if (ws) ws.close();
    const stream = $("stream").value;
    identifier = JSON.stringify({ channel: S.pubsubChannel, stream_name: stream });
    setState("connecting", "connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(proto + "//" + location.host + S.wsPath, ["actioncable-v1-json"]);
    ws = sock;
    sock.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "welcome") {
        sock.send(JSON.stringify({ command: "subscribe", identifier }));
      } else if (msg.type === "confirm_subscription" && msg.identifier === identifier) {
        setState("subscribed", "subscribed to " + stream);
        $("publish").disabled = false;
      } else if (msg.type === "reject_subscription") {
        setState("rejected", "subscription rejected");
      } else if (msg.identifier === identifier && msg.message !== undefined) {
        const m = msg.message;
        const rtt = m && typeof m.sentAt === "number" ? performance.now() - m.sentAt : null;
        const li = document.createElement("li");
        li.dataset.text = m && typeof m.text === "string" ? m.text : JSON.stringify(m);
        if (rtt !== null) li.dataset.rtt = rtt.toFixed(1);
        li.textContent = li.dataset.text + (rtt !== null ? " · round-trip " + rtt.toFixed(1) + " ms" : "");
        list.prepend(li);
        tryit.dataset.received = String(++received);
      }
    };
    sock.onclose = () => { if (ws === sock) { setState("closed", "disconnected"); $("publish").disabled = true; } };
  });
  $("publish").addEventListener("click", async () => {
    const body = JSON.stringify({ stream: $("stream").value, data: { text: $("message").value, sentAt: performance.now() } });
    const res = await fetch(S.publishPath, { method: "POST", headers: { "content-type": "application/json" }, body });
    if (!res.ok) setState("error", "publish failed: HTTP " + res.status);
  });
})();
</script>
</body>
</html>
`;
}
