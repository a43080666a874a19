// `tide bench serve --plot OUT.svg`: one self-contained SVG (no scripts, fonts or
// links), readable in any browser: latency-vs-throughput curves over the load points of
// a sweep (TTFT and TPOT, p50 and p99, against output tok/s) and the TTFT and ITL
// distributions (CDFs) of each point.
#pragma once

#include <string>
#include <vector>

#include "bench/serve_stats.h"

namespace tide::bench {

// The SVG document (UTF-8 XML). Empty points give empty axes, not an error.
std::string RenderSvg(const std::vector<PointResult>& points, const std::string& title);

}  // namespace tide::bench
