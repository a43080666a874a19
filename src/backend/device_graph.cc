#include "backend/device_graph.h"

#include <utility>

#include "backend/cuda/cuda_api.h"

namespace tide {

Result<DeviceStream> DeviceStream::Create(DeviceKind device) {
  DeviceStream s;
  if (device == DeviceKind::kCpu) return s;
  ASSIGN_OR_RETURN(s.stream_, cuda::StreamCreate());
  return s;
}

DeviceStream::~DeviceStream() { cuda::StreamDestroy(stream_); }
DeviceStream::DeviceStream(DeviceStream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
DeviceStream& DeviceStream::operator=(DeviceStream&& o) noexcept {
  if (this != &o) {
    cuda::StreamDestroy(stream_);
    stream_ = std::exchange(o.stream_, nullptr);
  }
  return *this;
}

Result<DeviceEvent> DeviceEvent::Create(DeviceKind device) {
  DeviceEvent e;
  if (device == DeviceKind::kCpu) return e;
  ASSIGN_OR_RETURN(e.event_, cuda::EventCreate());
  return e;
}

DeviceEvent::~DeviceEvent() { cuda::EventDestroy(event_); }
DeviceEvent::DeviceEvent(DeviceEvent&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
DeviceEvent& DeviceEvent::operator=(DeviceEvent&& o) noexcept {
  if (this != &o) {
    cuda::EventDestroy(event_);
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}

Status DeviceEvent::Record(const ExecContext& ctx) {
  if (event_ == nullptr) return OkStatus();
  return cuda::EventRecord(event_, ctx.stream);
}

Status DeviceEvent::Wait() const {
  if (event_ == nullptr) return OkStatus();
  return cuda::EventSynchronize(event_);
}

Result<DeviceGraph> DeviceGraph::Capture(const ExecContext& ctx, const std::function<Status()>& queue) {
  if (ctx.device != DeviceKind::kCuda || ctx.stream == nullptr)
    return FailedPrecondition("graph capture needs a CUDA context with a stream of its own");
  RETURN_IF_ERROR(cuda::CaptureBegin(ctx.stream));
  const Status queued = queue();
  // End the capture even when queueing failed, so the stream works again.
  Result<void*> exec = cuda::CaptureEnd(ctx.stream);
  if (!queued.ok()) {
    if (exec.ok()) cuda::GraphDestroy(*exec);
    return queued;
  }
  RETURN_IF_ERROR(exec.status());
  DeviceGraph g;
  g.exec_ = *exec;
  return g;
}

DeviceGraph::~DeviceGraph() { cuda::GraphDestroy(exec_); }
DeviceGraph::DeviceGraph(DeviceGraph&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
DeviceGraph& DeviceGraph::operator=(DeviceGraph&& o) noexcept {
  if (this != &o) {
    cuda::GraphDestroy(exec_);
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}

Status DeviceGraph::Launch(const ExecContext& ctx) const {
  if (exec_ == nullptr) return FailedPrecondition("launch of an empty DeviceGraph");
  return cuda::GraphLaunch(exec_, ctx.stream);
}

int64_t DeviceScratchGeneration() noexcept { return cuda::ScratchGeneration(); }

}  // namespace tide
