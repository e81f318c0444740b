// The console's charts: every element with data-chart holds its series as JSON ({"t": [unix seconds],
// "series": [{"label", "values", "color"}], "unit"}); uPlot (vendored) draws them. An element with
// data-live-chart (a site's load management) starts from its data-point and adds each point its Server-Sent-Event
// stream (the URL in data-live-chart) sends. No inline script: the CSP forbids it.
(function () {
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(ts) { // UTC, as every time on the pages
    var d = new Date(ts * 1e3);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + (d.getUTCSeconds() ? ":" + pad(d.getUTCSeconds()) : "");
  }
  function opts(el, series, unit) {
    return {
      width: Math.max(280, el.clientWidth - 20), height: 280, series: [{}].concat(series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, dash: s.dash || undefined, points: { show: false },
                 value: function (u, v) { return v == null ? "–" : v.toFixed(1) + " " + unit; } };
      })),
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{ values: function (u, splits) { return splits.map(clock); } }, { label: unit, size: 60 }],
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
    };
  }
  function draw(el) {
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var data = [spec.t].concat(spec.series.map(function (s) { return s.values; }));
    el.textContent = "";
    new uPlot(opts(el, spec.series, spec.unit), data, el);
    el.setAttribute("data-drawn", "true");
  }
  var COLORS = ["#2a9d8f", "#e9c46a", "#8e6bbf", "#f4a261", "#4c956c", "#b56576", "#5a189a", "#6c757d"];
  var KEEP = 720; // points kept: an hour at one every five seconds
  function live(el) {
    var first = JSON.parse(el.getAttribute("data-point"));
    var evses = Object.keys(first.evses);
    // The allocations first, so the import and the limit are drawn over them.
    var series = evses.map(function (k, i) { return { label: "allocated " + k, color: COLORS[i % COLORS.length] }; })
      .concat([{ label: "site import", color: "#3c8dde" }, { label: "limit", color: "#d33", dash: [6, 4] }]);
    var data = series.map(function () { return []; });
    data.unshift([]);
    function add(p) {
      data[0].push(p.t);
      evses.forEach(function (k, i) { data[1 + i].push(p.evses[k] == null ? null : p.evses[k]); });
      data[1 + evses.length].push(p.import_kw); data[2 + evses.length].push(p.limit_kw);
      if (data[0].length > KEEP) { data.forEach(function (d) { d.shift(); }); }
    }
    add(first);
    el.textContent = "";
    var plot = new uPlot(opts(el, series, "kW"), data, el);
    el.setAttribute("data-drawn", "true");
    var source = new EventSource(el.getAttribute("data-live-chart"));
    source.addEventListener("load", function (e) {
      var p = JSON.parse(e.data);
      add(p);
      plot.setData(data);
      el.setAttribute("data-points", String(data[0].length));
      var now = document.getElementById("import-now");
      if (now) { now.textContent = p.import_kw.toFixed(1); }
      document.querySelectorAll("[data-evse]").forEach(function (cell) {
        var kw = p.evses[cell.getAttribute("data-evse")];
        cell.textContent = kw == null ? "–" : kw.toFixed(1);
      });
    });
    source.addEventListener("signed-out", function () { source.close(); });
  }
  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]:not([data-drawn])").forEach(draw);
    (root || document).querySelectorAll("[data-live-chart]:not([data-drawn])").forEach(live);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
})();
