// How much of a step the GPU was busy: given the device's activity records (kernels,
// copies, memsets, with start/end on one clock) and a step's host-side window (from the
// step's start to its results on the host, same clock), the union of the activities
// inside the window is the busy time; the rest is overhead, split into gaps between
// activities and host time before the first / after the last one.
//
// Plain arithmetic, no device: backend/cuda/kernel_trace.h produces the records.
#pragma once

#include <cstdint>
#include <span>

namespace tide {

struct GpuActivity {
  enum class Kind : uint8_t { kKernel, kMemcpy, kMemset };
  Kind kind = Kind::kKernel;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;  // >= start_ns
};

struct TimeWindow {
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;  // >= start_ns
};

// One step's (or, summed with +=, several steps') time budget. Always
// wall = busy + gaps + host_before + host_after (up to rounding of the sums).
struct StepOverhead {
  int64_t num_steps = 0;
  int64_t num_activities = 0;  // activities that overlap the window(s)
  double wall_s = 0;
  double busy_s = 0;           // union of the activities, clipped to the window
  double gaps_s = 0;           // idle time between the first activity's start and the last one's end
  double host_before_s = 0;    // window start -> first activity (the whole window when none)
  double host_after_s = 0;     // last activity's end -> window end

  StepOverhead& operator+=(const StepOverhead& o);
  [[nodiscard]] double busy_fraction() const { return wall_s > 0 ? busy_s / wall_s : 0; }
  // 1 - busy/wall: the share of the step the GPU sat idle.
  [[nodiscard]] double overhead_fraction() const { return wall_s > 0 ? 1 - busy_s / wall_s : 0; }
};

// Activities in any order, possibly overlapping (concurrent streams) or straddling the
// window (only their part inside counts). An empty window or no activity inside gives
// busy = 0 and host_before = wall.
StepOverhead MeasureStepOverhead(std::span<const GpuActivity> activities, TimeWindow window);

}  // namespace tide
