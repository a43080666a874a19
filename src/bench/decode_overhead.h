// How much of a decode step the GPU sits idle (`tide bench forward --trace-overhead`).
//
// Runs a batch of requests on a fresh engine core while a KernelTracer records the GPU's
// activities, and lays host windows of each traced decode step over them:
//   model step  = one step through the runner, from Launch (or Forward) to its samples
//                 on the host (Collect): upload of the step's indices, graph replay,
//                 sampling, read-back. Only measured with async scheduling off, where
//                 nothing else is in flight meanwhile;
//   engine step = EngineCore::Step. With async scheduling (the default) a step
//                 launches step n and collects step n-1, so consecutive engine steps
//                 tile the time and the GPU may run one step while the host prepares the
//                 next: the figure that says whether the host keeps the GPU fed.
// Per window: GPU busy = union of the activities inside it; overhead = 1 - busy/wall,
// split into gaps between activities (launch gaps) and host time before the first /
// after the last activity (backend/step_overhead.h). The target (issue #7) is an
// overhead of at most 5% of a decode step.
#pragma once

#include <string>
#include <vector>

#include "backend/cuda/kernel_trace.h"
#include "backend/step_overhead.h"
#include "engine/engine_options.h"
#include "engine/model_runner.h"
#include "engine/request.h"

namespace tide::bench {

inline constexpr double kDecodeOverheadTarget = 0.05;

struct DecodeOverheadOptions {
  int warmup_steps = 2;  // decode steps left out first (a step that captures a graph runs eagerly)
  int traced_steps = 8;  // decode steps measured
};

struct DecodeOverhead {
  StepOverhead model_step;   // num_steps == 0 under async scheduling
  StepOverhead engine_step;
};

// Every request must decode more than warmup_steps + traced_steps tokens and all of them
// must fit one decode batch (options.max_num_seqs, KV blocks), so that each traced step
// decodes the whole batch. options.async_scheduling picks the engine's mode. REQUIRES: `tracer` is on (Start); its records are collected
// (and earlier uncollected ones dropped) by this call. Errors: the engine's (a request
// that failed), kInternal when fewer decode steps ran than asked, the tracer's.
Result<DecodeOverhead> TraceDecodeOverhead(ModelRunner& runner, const EngineOptions& options,
                                           std::vector<Request> requests, cuda::KernelTracer& tracer,
                                           const DecodeOverheadOptions& o = {});

// Per-step means: "wall 6.24 ms, GPU busy 6.05 ms (96.9%), gaps inside 0.12 ms, host
// 0.05 + 0.02 ms -> overhead 3.1% (target <= 5%)".
std::string FormatStepOverhead(const StepOverhead& s);

}  // namespace tide::bench
