// The three charts (uPlot, shipped in static/vendor): cluster throughput and latency, the
// token pool over time, and the core affinity distribution (stacked bars per node/core).

/* global uPlot */

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function axis(extra = {}) {
  const grid = { stroke: css("--grid"), width: 1 };
  return { stroke: css("--muted"), grid, ticks: grid, ...extra };
}

// 1234 -> "1.2k", 2500000 -> "2.5M": axis labels that fit
function compact(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${+(value / 1e3).toFixed(0)}k`;
  if (abs >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(2)}`;
}

const compactTicks = (u, ticks) => ticks.map(compact);
const fromZero = (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)];

function line(label, color, scale = "y", width = 1.5) {
  return { label, stroke: css(color), width, scale, points: { show: false } };
}

class Chart {
  constructor(container, options) {
    this.container = container;
    this.options = options;
    this.data = options.series.map(() => []);
    this.plot = null;
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(container);
  }

  destroy() {
    this.observer.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  build() {
    if (this.plot) this.plot.destroy();
    const width = Math.max(200, this.container.clientWidth);
    this.plot = new uPlot({ ...this.options, width, height: this.options.height },
      this.data, this.container);
  }

  resize() {
    if (!this.plot) return;
    const width = Math.max(200, this.container.clientWidth);
    if (width !== this.plot.width) this.plot.setSize({ width, height: this.options.height });
  }

  set(data) {
    this.data = data;
    if (this.plot) this.plot.setData(data);
    else this.build();
  }
}

export function clusterChart(container) {
  return new Chart(container, {
    height: 190,
    series: [
      {},
      line("completed/s", "--ok"),
      line("failed/s", "--bad"),
      line("p50 ms", "--accent", "ms", 1),
      line("p95 ms", "--warn", "ms", 1),
    ],
    axes: [axis(), axis({ label: "tokens/s", size: 56, values: compactTicks }),
      axis({ scale: "ms", side: 1, label: "ms", size: 56, values: compactTicks,
        grid: { show: false } })],
    scales: { x: { time: true }, y: { range: fromZero }, ms: { range: fromZero } },
    legend: { live: true },
  });
}

export function poolChart(container) {
  return new Chart(container, {
    height: 170,
    series: [
      {},
      line("waiting", "--warn"),
      line("held", "--muted"),
      line("executing", "--accent"),
      line("in flight", "--ok"),
    ],
    axes: [axis(), axis({ size: 50, values: compactTicks })],
    scales: { x: { time: true }, y: { range: fromZero } },
  });
}

export function affinityChart(container) {
  const bars = uPlot.paths.bars({ size: [0.6, 48] });
  const labels = [];
  const chart = new Chart(container, {
    height: 190,
    series: [
      {},
      { label: "heavy", fill: css("--heavy"), stroke: css("--heavy"), paths: bars,
        points: { show: false } },
      { label: "medium", fill: css("--medium"), stroke: css("--medium"), paths: bars,
        points: { show: false } },
      { label: "light", fill: css("--light"), stroke: css("--light"), paths: bars,
        points: { show: false } },
    ],
    axes: [axis({ values: (u, ticks) => ticks.map((i) => labels[i] ?? ""), space: 40 }),
      axis({ size: 50, values: compactTicks })],
    scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
      y: { range: fromZero } },
    legend: { live: false },
  });
  chart.labels = labels;
  return chart;
}

// cores: [{label, heavy, medium, light}] -> stacked bars (each series drawn over the next)
export function affinityData(chart, cores) {
  chart.labels.length = 0;
  chart.labels.push(...cores.map((c) => c.label));
  const x = cores.map((_, i) => i);
  const total = cores.map((c) => c.heavy + c.medium + c.light);
  const lower = cores.map((c) => c.medium + c.light);
  const light = cores.map((c) => c.light);
  chart.set([x, total, lower, light]);
}

export function clusterData(points) {
  return [points.map((p) => p.t), points.map((p) => p.completed), points.map((p) => p.failed),
    points.map((p) => p.p50), points.map((p) => p.p95)];
}

export function poolData(points) {
  return [points.map((p) => p.t), points.map((p) => p.waiting), points.map((p) => p.held),
    points.map((p) => p.executing), points.map((p) => p.inflight)];
}
