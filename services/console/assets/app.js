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

function tickCountdowns() {
  const now = Date.now();
  document.querySelectorAll(".countdown[data-due]").forEach((el) => {
    const due = Date.parse(el.dataset.due);
    if (Number.isNaN(due)) return;
    const left = (due - now) / 1000;
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
  let source = null;
  let refreshing = false;
  let again = false;
  // An offer event can come before the inbox has it (the inbox is written by its
  // own consumer of the same event): fetch again, a few times, until it shows.
  async function refresh(expected, tries) {
    if (refreshing) { again = true; return; }
    refreshing = true;
    let missing = false;
    try {
      const answer = await fetch(section.dataset.fragment, { credentials: "same-origin" });
      if (answer.redirected || !answer.ok) { window.location.reload(); return; }
      section.innerHTML = await answer.text();
      tickCountdowns();
      missing = Boolean(expected) && !section.querySelector('[data-assignment="' + CSS.escape(expected) + '"]');
    } finally {
      refreshing = false;
      if (missing && (tries || 0) < 20) {
        setTimeout(() => refresh(expected, (tries || 0) + 1), 250);
      } else if (again) {
        again = false;
        refresh();
      }
    }
  }
  function connect() {
    source = new EventSource(section.dataset.stream, { withCredentials: true });
    source.addEventListener("open", () => {
      if (live) live.classList.remove("offline");
      section.dataset.connected = "1";
    });
    source.addEventListener("offer", (event) => refresh(event.lastEventId, 0));
    for (const kind of ["assignment", "resync"]) {
      source.addEventListener(kind, () => refresh());
    }
    source.addEventListener("error", () => {
      if (live) live.classList.add("offline");
      delete section.dataset.connected;
      // The access cookie may have expired: a page load renews it, then reconnect.
      source.close();
      setTimeout(async () => {
        try { await fetch(section.dataset.fragment, { credentials: "same-origin" }); } catch (e) { /* offline */ }
        connect();
      }, 3000);
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
