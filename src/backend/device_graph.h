// Recorded device work (CUDA graphs) for code that must not see a CUDA header.
//
// A DeviceStream is a stream of one's own: CUDA cannot record work queued on the legacy
// default stream (ExecContext::stream == nullptr). DeviceGraph::Capture records what a
// function queues on ctx.stream without running it; Launch replays it. A replay reads and
// writes exactly the addresses that were used while recording, so everything the work
// touches (inputs, scratch, outputs) must stay allocated and in place while the graph
// lives; per-step values must be read by the kernels from device memory that the caller
// refills before each Launch, never passed as launch arguments.
//
// DeviceScratchGeneration() changes whenever the ops' own scratch memory is reallocated
// (a larger matmul or attention than before): graphs recorded before then are stale.
//
// Thread-safety: one thread per stream (the engine thread).
#pragma once

#include <cstdint>
#include <functional>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

class DeviceStream {
 public:
  DeviceStream() = default;
  // kUnimplemented without CUDA; kCpu gives an empty stream (get() == nullptr).
  static Result<DeviceStream> Create(DeviceKind device);
  ~DeviceStream();
  DeviceStream(DeviceStream&& o) noexcept;
  DeviceStream& operator=(DeviceStream&& o) noexcept;
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;

  [[nodiscard]] void* get() const noexcept { return stream_; }

 private:
  void* stream_ = nullptr;
};

// A marker in a stream (a CUDA event without timing): Record queues it after the work
// queued so far; Wait blocks the host until that work has finished. On kCpu both are
// no-ops (CPU work is done when queued). Move-only.
class DeviceEvent {
 public:
  DeviceEvent() = default;
  // kUnimplemented for kCuda without CUDA.
  static Result<DeviceEvent> Create(DeviceKind device);
  ~DeviceEvent();
  DeviceEvent(DeviceEvent&& o) noexcept;
  DeviceEvent& operator=(DeviceEvent&& o) noexcept;
  DeviceEvent(const DeviceEvent&) = delete;
  DeviceEvent& operator=(const DeviceEvent&) = delete;

  [[nodiscard]] Status Record(const ExecContext& ctx);
  // kInternal for a device fault raised by the work before the marker.
  [[nodiscard]] Status Wait() const;

 private:
  void* event_ = nullptr;
};

class DeviceGraph {
 public:
  DeviceGraph() = default;
  // Records what `queue` puts on ctx.stream (nothing runs) and instantiates it.
  // REQUIRES: ctx.device == kCuda and ctx.stream is a DeviceStream's. Errors: the
  // status `queue` returns, or the CUDA error of a launch or of the recording (the
  // stream is usable again afterwards either way).
  static Result<DeviceGraph> Capture(const ExecContext& ctx, const std::function<Status()>& queue);
  ~DeviceGraph();
  DeviceGraph(DeviceGraph&& o) noexcept;
  DeviceGraph& operator=(DeviceGraph&& o) noexcept;
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  [[nodiscard]] bool valid() const noexcept { return exec_ != nullptr; }
  // Queues one replay on ctx.stream.
  [[nodiscard]] Status Launch(const ExecContext& ctx) const;

 private:
  void* exec_ = nullptr;
};

int64_t DeviceScratchGeneration() noexcept;

}  // namespace tide
