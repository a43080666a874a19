// IncrementalDetokenizer: decodes a sliding window and releases only the suffix that
// can no longer change. The window starts at prefix_offset_ so the decoder's start-of-
// text rules (Metaspace/Strip removing the first space) apply to the same leading
// tokens in both decodes whose difference is emitted.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace tide {
namespace {

bool IsByteToken(const std::string& t) {
  return t.size() == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[5] == '>';
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_(skip_special_tokens) {}

std::string IncrementalDetokenizer::DecodeRange(size_t begin, size_t end) const {
  std::vector<int32_t> window(ids_.begin() + static_cast<ptrdiff_t>(begin), ids_.begin() + static_cast<ptrdiff_t>(end));
  auto r = tok_.Decode(window, skip_special_);
  return r.ok() ? std::move(r).value() : std::string();
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (id < 0 || id >= tok_.vocab_size()) return {};
  // Skipped specials are dropped before decoding, exactly as Decode drops them, so they
  // never become the first token of a window.
  if (skip_special_ && tok_.IsSpecial(id)) return {};
  ids_.push_back(id);
  // A run of byte-fallback pieces decodes as a unit (all U+FFFD if any byte is invalid),
  // so nothing in it is final until the run ends.
  if (IsByteToken(tok_.IdToToken(id))) return {};
  std::string prefix = DecodeRange(prefix_offset_, read_offset_);
  std::string full = DecodeRange(prefix_offset_, ids_.size());
  // A trailing U+FFFD may be an incomplete character that the next token completes.
  if (full.size() <= prefix.size() || tok::EndsWithReplacementChar(full) || full.compare(0, prefix.size(), prefix) != 0) {
    return {};
  }
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return full.substr(prefix.size());
}

std::string IncrementalDetokenizer::Flush() {
  std::string prefix = DecodeRange(prefix_offset_, read_offset_);
  std::string full = DecodeRange(prefix_offset_, ids_.size());
  prefix_offset_ = read_offset_ = ids_.size();
  if (full.size() <= prefix.size() || full.compare(0, prefix.size(), prefix) != 0) return {};
  return full.substr(prefix.size());
}

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (auto& s : stop_strings) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopStringMatcher::Output StopStringMatcher::Push(std::string_view text) {
  Output out;
  if (stopped_) return out;
  pending_.append(text);
  // Earliest occurrence of any stop string (the longest one on a tie).
  size_t best = std::string::npos;
  int which = -1;
  for (size_t k = 0; k < stops_.size(); ++k) {
    size_t p = pending_.find(stops_[k]);
    if (p != std::string::npos && (p < best || (p == best && stops_[k].size() > stops_[which].size()))) {
      best = p;
      which = static_cast<int>(k);
    }
  }
  if (which >= 0) {
    out.emit = pending_.substr(0, best);
    out.stopped = true;
    out.matched = which;
    stopped_ = true;
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n) {
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  out.emit = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringMatcher::Flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace tide
