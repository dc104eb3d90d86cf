(function () {
  var button = document.getElementById("share");
  var out = document.getElementById("share-out");
  if (!button || !out || !window.fetch) return;
  button.addEventListener("click", function () {
    var body = new URLSearchParams();
    var parent = document.body.getAttribute("data-share");
    if (parent) body.set("parent", parent);
    fetch(document.body.getAttribute("data-share-endpoint"), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString(),
      credentials: "same-origin"
    })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (d) {
        out.value = d.url;
        out.hidden = false;
        out.select();
        try { history.replaceState(null, "", d.url); } catch (e) {}
        if (navigator.share) {
          navigator.share({ title: document.title, url: d.url }).catch(function () {});
        } else if (navigator.clipboard) {
          navigator.clipboard.writeText(d.url).then(function () { button.textContent = "链接已复制"; }, function () {});
        }
      })
      .catch(function () { button.textContent = "请稍后再试"; });
  });
})();
