// zq dashboard: one EventSource per page. Nothing here runs on a timer: the chart moves
// with the server's ticks, and a page's live part is fetched again only when the event
// stream says something changed (at most one fetch in flight, one more queued).
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="zq-csrf"]').content;
  var page = document.body.dataset.page;
  var taskId = document.body.dataset.task || null;
  var live = document.getElementById("live");
  var chart = document.getElementById("chart");
  var series = {};  // second -> tasks finished
  var CHART_MOST = 300, CHART_LEAST = 60;  // seconds shown: from the first data, 1-5 min
  var born = Date.now() / 1000;  // the earliest second this page knows of

  function flash(text, bad) {
    var el = document.getElementById("flash");
    el.textContent = text;
    el.className = bad ? "bad" : "good";
  }

  // --- the live part: fetched again when something changed --------------------------
  var fetching = false, again = false;
  function refresh() {
    if (!live || !live.dataset.fragment) return;
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(live.dataset.fragment, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) { live.innerHTML = html; })
      .catch(function () {})
      .then(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  // --- the chart: server-sent per-second counts, drawn as SVG -----------------------
  function drawChart(now) {
    if (!chart) return;
    var end = Math.floor(now);
    var span = Math.min(CHART_MOST, Math.max(CHART_LEAST, end - Math.floor(born) + 5));
    var start = end - span, peak = 1, total = 0, pts = [];
    for (var s in series) { if (+s < start) delete series[s]; }
    for (var t = start; t <= end; t++) {
      var n = series[t] || 0;
      peak = Math.max(peak, n);
      total += n;
    }
    var w = 600, h = 160;
    for (t = start; t <= end; t++) {
      var x = (t - start) / span * w;
      var y = h - 4 - (series[t] || 0) / peak * (h - 12);
      pts.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    chart.innerHTML =
      '<line x1="0" y1="' + (h - 4) + '" x2="' + w + '" y2="' + (h - 4) + '" class="axis"/>' +
      '<polyline class="area" points="0,' + (h - 4) + " " + pts.join(" ") + " " + w + "," + (h - 4) + '"/>' +
      '<polyline class="line" points="' + pts.join(" ") + '"/>';
    document.getElementById("chart-span").textContent =
      (span >= 120 ? Math.round(span / 60) + " min" : span + " s") + " ago";
    chart.dataset.total = total;
    document.getElementById("chart-total").textContent = total;
    document.getElementById("chart-peak").textContent = peak;
    document.getElementById("chart-now").textContent = series[end - 1] || 0;
  }
  if (chart) {
    JSON.parse(chart.dataset.series || "[]").forEach(function (p) {
      if (p[1]) { series[p[0]] = p[1]; born = Math.min(born, p[0]); }
    });
    drawChart(Date.now() / 1000);
  }

  // --- the event stream -----------------------------------------------------------
  // Ticks come to every page; events only to a task's page, and only that task's.
  var changedBefore = false;
  var stream = new EventSource(taskId ? "/api/events?task=" + encodeURIComponent(taskId)
                                      : "/api/events");
  var state = document.getElementById("live-state");
  stream.addEventListener("hello", function (m) {
    var d = JSON.parse(m.data);
    if (d.live) { state.textContent = "live"; state.dataset.live = "on"; }
  });
  stream.addEventListener("tick", function (m) {
    var d = JSON.parse(m.data);
    d.series.forEach(function (p) { if (p[1]) series[p[0]] = p[1]; else delete series[p[0]]; });
    drawChart(d.time);
    // Once more on the tick after the last change: what the page fetched then may have
    // been the dashboard's answer of up to half a second before the last events.
    if ((d.changed || changedBefore) && !taskId) refresh();
    changedBefore = d.changed;
  });
  stream.addEventListener("events", function (m) {
    var events = JSON.parse(m.data);
    if (taskId && events.some(function (e) { return e.id === taskId; })) refresh();
  });
  stream.addEventListener("gap", function (m) {
    flash("this page fell behind the event stream: " + JSON.parse(m.data).dropped + " updates skipped", true);
    refresh();
  });
  stream.onerror = function () { state.textContent = "reconnecting…"; state.dataset.live = "off"; };
  stream.onopen = function () { state.textContent = "live"; state.dataset.live = "on"; };

  // --- actions: POSTs with the session's CSRF token ---------------------------------
  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
                       headers: {"X-ZQ-CSRF": csrf, "Content-Type": "application/json"},
                       body: JSON.stringify(body || {})})
      .then(function (r) {
        return r.json().then(function (j) { return {ok: r.ok, body: j}; });
      });
  }
  function act(el, url, body) {
    if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return;
    post(url, body).then(function (r) {
      if (!r.ok) { flash(r.body.error || "refused", true); return; }
      var b = r.body, text = "done";
      if (b.retried) text = "retried " + b.retried.length + " tasks" + (b.skipped.length ? ", skipped " + b.skipped.length : "");
      else if (b.purged !== undefined) text = "purged " + b.purged + " tasks";
      else if (b.state) text = b.id + " is " + b.state;
      else if (b.paused !== undefined) text = b.name + (b.paused ? " is paused" : " is resumed");
      else if (b.id) text = "submitted " + b.id;
      flash(text, false);
      refresh();
    }).catch(function (e) { flash(String(e), true); });
  }
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("button[data-post]");
    if (!el) return;
    ev.preventDefault();
    act(el, el.dataset.post);
  });
  document.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form[data-post]");
    if (!form) return;
    ev.preventDefault();
    var body = {};
    new FormData(form).forEach(function (v, k) { body[k] = v; });
    act(form, form.dataset.post, body);
  });
  window.addEventListener("beforeunload", function () { stream.close(); });
})();
