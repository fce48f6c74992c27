// Draws every <canvas data-chart="ID">: its data is the JSON in <script type="application/json" id="ID">,
// written by the server. No inline script (the Content-Security-Policy forbids it); without JavaScript or
// Chart.js the tables under the charts hold every number.
(function () {
  "use strict";
  const palette = ["#2357c6", "#e07b39", "#3a9d5d", "#c4314b", "#8a5cc2", "#1f9bb4", "#b58900", "#6c757d",
                   "#d63384", "#20c997", "#795548", "#0d6efd", "#fd7e14", "#198754"];
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 2 });

  function build(spec) {
    const money = (v) => usd.format(v);
    const scales = {
      x: { stacked: !!spec.stacked },
      y: { stacked: !!spec.stacked, beginAtZero: true, ticks: spec.money ? { callback: money } : {} },
    };
    if (spec.y2) {
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                    ticks: spec.y2 === "money" ? { callback: money } : { callback: (v) => v + "%" } };
      if (spec.y2 === "percent") { scales.y2.max = 100; }
    }
    if (spec.horizontal) {
      scales.x = scales.y;
      scales.y = { stacked: !!spec.stacked };
      delete scales.y2;
    }
    const datasets = spec.datasets.map((d, i) => Object.assign({
      backgroundColor: palette[i % palette.length],
      borderColor: palette[i % palette.length],
      pointRadius: 0,
      borderWidth: d.type === "line" ? 2 : 0,
    }, d));
    return {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        scales: scales,
        plugins: { legend: { display: datasets.length > 1 } },
      },
    };
  }

  function draw() {
    if (typeof window.Chart === "undefined") { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) { return; }
      new window.Chart(canvas, build(JSON.parse(source.textContent)));
      canvas.dataset.drawn = "true";
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
