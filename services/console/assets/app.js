// The console's only script. Pages work without it; it adds the inbox's live
// updates (the API's event stream, read with the session cookie) and the SLA
// countdowns. No inline code: the Content-Security-Policy forbids it.
"use strict";

function formatLeft(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (h > 0 ? h + ":" + pad(m) : m) + ":" + pad(r);
}

// The server says how many seconds are left when it renders the list; the
// deadline is counted from then on this device's clock, so a wrong clock does not
// matter.
function tickCountdowns() {
  const now = Date.now();
  document.querySelectorAll(".countdown[data-left]").forEach((el) => {
    if (!el.dataset.deadline) {
      const left = Number(el.dataset.left);
      if (Number.isNaN(left)) return;
      el.dataset.deadline = String(now + left * 1000);
    }
    const left = (Number(el.dataset.deadline) - now) / 1000;
    if (left <= 0) {
      el.textContent = el.dataset.overdue || "0:00";
      el.classList.add("overdue");
    } else {
      el.textContent = formatLeft(left);
      el.classList.remove("overdue");
    }
  });
}

function liveInbox(section) {
  const live = document.getElementById("live");
  const expected = new Set();
  let refreshing = false, again = false, tries = 0, retryDelay = 1000;

  // Someone typing a reject reason keeps the list still until they are done.
  function typing() {
    const el = document.activeElement;
    return el && section.contains(el) && el.tagName === "INPUT" && el.value !== "";
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    if (typing()) { setTimeout(refresh, 1000); return; }
    refreshing = true;
    try {
      const answer = await fetch(section.dataset.fragment, { credentials: "same-origin" });
      if (answer.redirected) { window.location.reload(); return; } // signed out
      if (answer.ok) {
        section.innerHTML = await answer.text();
        tickCountdowns();
        for (const id of Array.from(expected)) {
          if (section.querySelector('[data-assignment="' + CSS.escape(id) + '"]')) expected.delete(id);
        }
      }
    } catch (e) {
      // Offline: the stream's reconnection refreshes again.
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        refresh();
      } else if (expected.size > 0 && tries < 20) {
        // An offer can arrive before the inbox holds it (the inbox is written by
        // its own consumer of the same event): look again shortly.
        tries += 1;
        setTimeout(refresh, 250);
      }
    }
  }

  function connect() {
    const source = new EventSource(section.dataset.stream, { withCredentials: true });
    source.addEventListener("open", () => {
      retryDelay = 1000;
      if (live) live.classList.remove("offline");
      section.dataset.connected = "1";
      refresh(); // whatever happened while disconnected
    });
    source.addEventListener("offer", (event) => {
      if (event.lastEventId) expected.add(event.lastEventId);
      tries = 0;
      refresh();
    });
    for (const kind of ["assignment", "resync"]) {
      source.addEventListener(kind, () => refresh());
    }
    source.addEventListener("error", () => {
      if (live) live.classList.add("offline");
      delete section.dataset.connected;
      source.close();
      // A page load renews an expired session cookie (or finds the person signed
      // out); then reconnect, waiting longer each time.
      refresh();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }
  connect();
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 1000);
  const inbox = document.getElementById("inbox");
  if (inbox && window.EventSource) liveInbox(inbox);
});
