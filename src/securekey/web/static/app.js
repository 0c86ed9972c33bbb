// securekey dashboard: live countdowns, and page regions refreshed over Server-Sent Events.
// No framework and no tokens here: the stream is authenticated by the session cookie and
// carries names, fingerprints and times only, never key material.
"use strict";

function formatLeft(ms) {
  if (ms <= 0) return "due now";
  let s = Math.floor(ms / 1000);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (s >= size || (unit === "s" && parts.length === 0)) {
      parts.push(Math.floor(s / size) + unit);
      s %= size;
    }
  }
  return "in " + parts.slice(0, 3).join(" ");
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-countdown]")) {
    const at = Date.parse(el.getAttribute("datetime"));
    if (!Number.isNaN(at)) el.textContent = formatLeft(at - now);
  }
}

function live(container) {
  const url = container.getAttribute("data-live");
  const status = document.createElement("p");
  status.className = "live-status";
  status.setAttribute("role", "status");
  status.textContent = "Connecting to live updates…";
  container.before(status);
  const source = new EventSource(url);
  source.addEventListener("open", () => {
    status.textContent = "Live: this page updates when a release happens.";
    status.dataset.state = "open";
  });
  source.addEventListener("update", (event) => {
    const data = JSON.parse(event.data);
    for (const [name, html] of Object.entries(data.regions)) {
      const region = document.getElementById("region-" + name);
      // Fragments are rendered and escaped by the server's templates.
      if (region && region.innerHTML !== html) region.innerHTML = html;
    }
    tick();
    document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
  });
  source.addEventListener("deleted", () => {
    status.textContent = "This was deleted.";
    source.close();
  });
  source.addEventListener("signed-out", () => {
    status.textContent = "Your session ended: sign in again.";
    source.close();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) status.textContent = "Live updates stopped.";
    else status.textContent = "Reconnecting…";
    status.dataset.state = "error";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  for (const el of document.querySelectorAll("[data-live]")) live(el);
});
