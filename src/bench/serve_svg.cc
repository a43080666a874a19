#include "bench/serve_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace tide::bench {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
constexpr int kPanelW = 520, kPanelH = 340;
constexpr int kLeft = 70, kRight = 150, kTop = 40, kBottom = 50;  // plot margins in a panel

struct Series {
  std::string name;
  std::string color;
  bool dashed = false;
  bool markers = true;
  std::vector<std::pair<double, double>> xy;
  std::vector<std::string> labels;  // optional, one per point (the sweep's rates)
};

struct Panel {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool y_from_zero = true;
};

std::string Escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string TickLabel(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
  return b;
}

// A "nice" step (1, 2 or 5 x 10^k) giving about `n` ticks over [lo, hi].
double NiceStep(double lo, double hi, int n) {
  const double raw = (hi - lo) / n;
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

void Range(const Panel& p, bool x, double* lo, double* hi) {
  *lo = std::numeric_limits<double>::infinity();
  *hi = -std::numeric_limits<double>::infinity();
  for (const Series& s : p.series)
    for (auto [a, b] : s.xy) {
      const double v = x ? a : b;
      if (!std::isfinite(v)) continue;
      *lo = std::min(*lo, v);
      *hi = std::max(*hi, v);
    }
  if (!std::isfinite(*lo)) *lo = 0, *hi = 1;
  if (!x && p.y_from_zero) *lo = std::min(*lo, 0.0);
  if (x) *lo = std::min(*lo, 0.0);
  if (*hi - *lo < 1e-9) *hi = *lo + (*lo == 0 ? 1 : std::abs(*lo) * 0.1);
}

void DrawPanel(std::string& o, const Panel& p, int ox, int oy) {
  const int w = kPanelW - kLeft - kRight, h = kPanelH - kTop - kBottom;
  double x0, x1, y0, y1;
  Range(p, true, &x0, &x1);
  Range(p, false, &y0, &y1);
  const double xs = NiceStep(x0, x1, 5), ys = NiceStep(y0, y1, 5);
  x0 = std::floor(x0 / xs) * xs, x1 = std::ceil(x1 / xs) * xs;
  y0 = std::floor(y0 / ys) * ys, y1 = std::ceil(y1 / ys) * ys;
  auto px = [&](double v) { return kLeft + (v - x0) / (x1 - x0) * w; };
  auto py = [&](double v) { return kTop + h - (v - y0) / (y1 - y0) * h; };

  o += "<g transform=\"translate(" + std::to_string(ox) + "," + std::to_string(oy) + ")\">\n";
  o += "<text x=\"" + std::to_string(kLeft + w / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
       Escape(p.title) + "</text>\n";
  // Grid and tick labels (bounded: at most ~12 ticks per axis by NiceStep's choice).
  for (int i = 0; i <= 12; ++i) {
    const double v = x0 + i * xs;
    if (v > x1 + xs * 1e-6) break;
    o += "<line x1=\"" + Num(px(v)) + "\" y1=\"" + Num(kTop) + "\" x2=\"" + Num(px(v)) + "\" y2=\"" + Num(kTop + h) +
         "\" stroke=\"#e0e0e0\"/>\n";
    o += "<text x=\"" + Num(px(v)) + "\" y=\"" + Num(kTop + h + 16) + "\" text-anchor=\"middle\" font-size=\"11\">" +
         TickLabel(v) + "</text>\n";
  }
  for (int i = 0; i <= 12; ++i) {
    const double v = y0 + i * ys;
    if (v > y1 + ys * 1e-6) break;
    o += "<line x1=\"" + Num(kLeft) + "\" y1=\"" + Num(py(v)) + "\" x2=\"" + Num(kLeft + w) + "\" y2=\"" + Num(py(v)) +
         "\" stroke=\"#e0e0e0\"/>\n";
    o += "<text x=\"" + Num(kLeft - 6) + "\" y=\"" + Num(py(v) + 4) + "\" text-anchor=\"end\" font-size=\"11\">" +
         TickLabel(v) + "</text>\n";
  }
  o += "<rect x=\"" + Num(kLeft) + "\" y=\"" + Num(kTop) + "\" width=\"" + Num(w) + "\" height=\"" + Num(h) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  o += "<text x=\"" + Num(kLeft + w / 2.0) + "\" y=\"" + Num(kTop + h + 38) + "\" text-anchor=\"middle\" font-size=\"12\">" +
       Escape(p.xlabel) + "</text>\n";
  o += "<text transform=\"translate(18," + Num(kTop + h / 2.0) + ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" +
       Escape(p.ylabel) + "</text>\n";
  int legend_row = 0;
  for (const Series& s : p.series) {
    if (s.xy.empty()) continue;
    std::string pts;
    for (auto [a, b] : s.xy) pts += Num(px(a)) + "," + Num(py(b)) + " ";
    o += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\"" +
         (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + " points=\"" + pts + "\"/>\n";
    if (s.markers)
      for (auto [a, b] : s.xy)
        o += "<circle cx=\"" + Num(px(a)) + "\" cy=\"" + Num(py(b)) + "\" r=\"3.5\" fill=\"" + s.color + "\"/>\n";
    for (size_t i = 0; i < s.labels.size() && i < s.xy.size(); ++i)
      o += "<text x=\"" + Num(px(s.xy[i].first) + 5) + "\" y=\"" + Num(py(s.xy[i].second) + 14) +
           "\" font-size=\"10\" fill=\"#555\">" + Escape(s.labels[i]) + "</text>\n";
    const double ly = kTop + 10 + 18 * legend_row++;
    o += "<line x1=\"" + Num(kLeft + w + 10) + "\" y1=\"" + Num(ly) + "\" x2=\"" + Num(kLeft + w + 34) + "\" y2=\"" +
         Num(ly) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6,4\"" : "") +
         "/>\n";
    o += "<text x=\"" + Num(kLeft + w + 38) + "\" y=\"" + Num(ly + 4) + "\" font-size=\"11\">" + Escape(s.name) +
         "</text>\n";
  }
  o += "</g>\n";
}

std::string RateLabel(double r) {
  if (std::isinf(r)) return "rate inf";
  char b[32];
  std::snprintf(b, sizeof b, "rate %g/s", r);
  return b;
}

// Empirical CDF as a step line, thinned to at most ~400 points (quantiles) so a run of
// a million ITL samples still gives a small file.
std::vector<std::pair<double, double>> Cdf(std::vector<double> v) {
  std::vector<std::pair<double, double>> xy;
  if (v.empty()) return xy;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const size_t steps = std::min<size_t>(n, 400);
  for (size_t k = 0; k <= steps; ++k) {
    const size_t i = std::min(n - 1, k * n / steps);
    xy.emplace_back(v[i], static_cast<double>(i + 1) / static_cast<double>(n));
  }
  xy.emplace_back(v.back(), 1.0);
  return xy;
}

}  // namespace

std::string RenderSvg(const std::vector<PointResult>& points, const std::string& title) {
  Panel ttft{"TTFT vs throughput", "output tokens/s", "TTFT (ms)", {}, true};
  Panel tpot{"TPOT vs throughput", "output tokens/s", "TPOT (ms)", {}, true};
  Panel ttft_cdf{"TTFT distribution", "TTFT (ms)", "fraction of requests", {}, true};
  Panel itl_cdf{"ITL distribution", "inter-token latency (ms)", "fraction of gaps", {}, true};
  Series ttft50{"p50", kColors[0], false, true, {}, {}}, ttft99{"p99", kColors[1], true, true, {}, {}};
  Series tpot50{"p50", kColors[0], false, true, {}, {}}, tpot99{"p99", kColors[1], true, true, {}, {}};
  // Curves follow the sweep in increasing throughput, so lines do not zig-zag.
  std::vector<const PointResult*> by_tput;
  for (const PointResult& p : points) by_tput.push_back(&p);
  std::sort(by_tput.begin(), by_tput.end(), [](const PointResult* a, const PointResult* b) {
    return a->summary.output_throughput < b->summary.output_throughput;
  });
  for (const PointResult* p : by_tput) {
    const PointSummary& s = p->summary;
    if (s.completed == 0) continue;
    ttft50.xy.emplace_back(s.output_throughput, s.ttft_ms.p50);
    std::string label = RateLabel(s.request_rate).substr(5);  // "20/s", "inf"
    if (s.max_concurrency > 0) label += " c" + std::to_string(s.max_concurrency);
    ttft50.labels.push_back(label);
    tpot50.labels.push_back(label);
    ttft99.xy.emplace_back(s.output_throughput, s.ttft_ms.p99);
    tpot50.xy.emplace_back(s.output_throughput, s.tpot_ms.p50);
    tpot99.xy.emplace_back(s.output_throughput, s.tpot_ms.p99);
  }
  ttft.series = {ttft50, ttft99};
  tpot.series = {tpot50, tpot99};
  for (size_t i = 0; i < points.size(); ++i) {
    std::vector<double> t, g;
    for (const Sample& x : points[i].samples) {
      if (!x.ok) continue;
      t.push_back(1e3 * x.ttft_s);
      for (double d : x.itl_s) g.push_back(1e3 * d);
    }
    const std::string color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    ttft_cdf.series.push_back({RateLabel(points[i].summary.request_rate), color, false, false, Cdf(std::move(t)), {}});
    itl_cdf.series.push_back({RateLabel(points[i].summary.request_rate), color, false, false, Cdf(std::move(g)), {}});
  }
  const int width = 2 * kPanelW, height = 2 * kPanelH + 40;
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
       std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
       "\" font-family=\"sans-serif\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + std::to_string(width / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"17\">" + Escape(title) +
       "</text>\n";
  DrawPanel(o, ttft, 0, 40);
  DrawPanel(o, tpot, kPanelW, 40);
  DrawPanel(o, ttft_cdf, 0, 40 + kPanelH);
  DrawPanel(o, itl_cdf, kPanelW, 40 + kPanelH);
  o += "</svg>\n";
  return o;
}

}  // namespace tide::bench
