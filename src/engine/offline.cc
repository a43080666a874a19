#include "engine/offline.h"

#include <map>

namespace tide {

Result<std::vector<Completion>> RunToCompletion(EngineCore& core, std::vector<Request> requests,
                                                const std::function<void(const RequestOutput&)>& on_output) {
  std::map<std::pair<std::string, int>, size_t> slot;
  std::vector<Completion> done;
  for (const Request& r : requests)
    for (int i = 0; i < r.sampling.n; ++i) {
      slot[{r.id, i}] = done.size();
      done.push_back({});
      done.back().request_id = r.id;
      done.back().index = i;
    }
  std::vector<RequestOutput> outs;
  std::vector<std::string> added;
  for (Request& r : requests) {
    std::string id = r.id;
    if (Status s = core.AddRequest(std::move(r), EngineClock()); !s.ok()) {
      for (const std::string& a : added) core.Abort(a, &outs);
      return s;
    }
    added.push_back(std::move(id));
  }
  while (core.HasUnfinished()) {
    outs.clear();
    core.Step(&outs);
    for (RequestOutput& o : outs) {
      if (on_output) on_output(o);
      Completion& c = done[slot.at({o.request_id, o.index})];
      c.token_ids.insert(c.token_ids.end(), o.token_ids.begin(), o.token_ids.end());
      c.text += o.text;
      for (SampleResult& lp : o.logprobs) c.logprobs.push_back(std::move(lp));
      for (SampleResult& lp : o.prompt_logprobs) c.prompt_logprobs.push_back(std::move(lp));
      c.token_times.insert(c.token_times.end(), o.token_times.begin(), o.token_times.end());
      if (o.finished()) {
        c.finish_reason = o.finish_reason;
        c.status = o.status;
        c.usage = o.usage;
        c.times = o.times;
      }
    }
  }
  return done;
}

}  // namespace tide
