// The console's charts: every element with data-chart holds its series as JSON ({"t": [unix seconds],
// "series": [{"label", "values", "color"}], "unit"}); uPlot (vendored) draws them. No inline script: the CSP forbids it.
(function () {
  function draw(el) {
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var data = [spec.t].concat(spec.series.map(function (s) { return s.values; }));
    var series = [{}].concat(spec.series.map(function (s) {
      return { label: s.label, stroke: s.color, width: 2, dash: s.dash || undefined, points: { show: false },
               value: function (u, v) { return v == null ? "–" : v.toFixed(1) + " " + spec.unit; } };
    }));
    var opts = {
      width: Math.max(300, el.clientWidth - 20), height: 280, series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{}, { label: spec.unit, size: 60 }],
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
    };
    el.textContent = "";
    new uPlot(opts, data, el);
    el.setAttribute("data-drawn", "true");
  }
  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]:not([data-drawn])").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
})();
