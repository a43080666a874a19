#include "backend/step_overhead.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace tide {

StepOverhead& StepOverhead::operator+=(const StepOverhead& o) {
  num_steps += o.num_steps;
  num_activities += o.num_activities;
  wall_s += o.wall_s;
  busy_s += o.busy_s;
  gaps_s += o.gaps_s;
  host_before_s += o.host_before_s;
  host_after_s += o.host_after_s;
  return *this;
}

StepOverhead MeasureStepOverhead(std::span<const GpuActivity> activities, TimeWindow window) {
  StepOverhead r;
  r.num_steps = 1;
  if (window.end_ns <= window.start_ns) return r;
  const uint64_t wall = window.end_ns - window.start_ns;
  std::vector<std::pair<uint64_t, uint64_t>> in;  // clipped [start, end)
  for (const GpuActivity& a : activities) {
    const uint64_t s = std::max(a.start_ns, window.start_ns);
    const uint64_t e = std::min(a.end_ns, window.end_ns);
    if (e > s) in.emplace_back(s, e);
  }
  r.num_activities = static_cast<int64_t>(in.size());
  r.wall_s = 1e-9 * static_cast<double>(wall);
  if (in.empty()) {
    r.host_before_s = r.wall_s;
    return r;
  }
  std::sort(in.begin(), in.end());
  // Sweep in start order: a gap opens wherever an activity starts after every earlier
  // one has ended.
  uint64_t busy = 0, gaps = 0;
  uint64_t cur_start = in[0].first, cur_end = in[0].second;
  for (size_t i = 1; i < in.size(); ++i) {
    if (in[i].first > cur_end) {
      busy += cur_end - cur_start;
      gaps += in[i].first - cur_end;
      cur_start = in[i].first;
      cur_end = in[i].second;
    } else {
      cur_end = std::max(cur_end, in[i].second);
    }
  }
  busy += cur_end - cur_start;
  r.busy_s = 1e-9 * static_cast<double>(busy);
  r.gaps_s = 1e-9 * static_cast<double>(gaps);
  r.host_before_s = 1e-9 * static_cast<double>(in[0].first - window.start_ns);
  r.host_after_s = 1e-9 * static_cast<double>(window.end_ns - cur_end);
  return r;
}

}  // namespace tide
