#include "bench/serve_workload.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>

#include "base/file.h"
#include "base/rng.h"
#include "tokenizer/tokenizer.h"

namespace tide::bench {
namespace {

// Short common words: most are one token in BPE vocabularies, so the estimate stays
// close to what a real tokenizer would count.
constexpr std::array<const char*, 64> kWords = {
    "the",   "of",    "and",   "to",    "in",    "is",    "that",  "for",   "it",    "as",    "was",
    "with",  "be",    "by",    "on",    "not",   "he",    "this",  "are",   "or",    "his",   "from",
    "at",    "which", "but",   "have",  "an",    "had",   "they",  "you",   "were",  "their", "one",
    "all",   "we",    "can",   "her",   "has",   "there", "been",  "if",    "more",  "when",  "will",
    "would", "who",   "so",    "no",    "time",  "river", "stone", "light", "water", "north", "green",
    "small", "house", "world", "music", "field", "order", "paper", "story", "point"};

int Draw(Rng& rng, LengthRange r) {
  return r.lo + static_cast<int>(rng.NextU64() % static_cast<uint64_t>(r.hi - r.lo + 1));
}

// Random text of about `n` tokens (by `counter`), drawn from `rng`.
std::string RandomText(Rng& rng, int n, const TokenCounter& counter) {
  if (n <= 0) return "";
  const Tokenizer* tok = counter.tokenizer();
  if (tok == nullptr) {
    std::string s;
    while (counter.Count(s) < n) {
      if (!s.empty()) s += ' ';
      s += kWords[rng.NextU64() % kWords.size()];
    }
    return s;
  }
  // Random non-special ids, decoded; re-encoding may merge or split pieces, so correct
  // the id count towards the target (bounded: 10 rounds; small vocabularies merge a lot).
  const uint64_t vocab = static_cast<uint64_t>(std::max(tok->vocab_size(), 1));
  auto draw_id = [&] {
    for (int tries = 0; tries < 16; ++tries) {
      const auto id = static_cast<int32_t>(rng.NextU64() % vocab);
      if (!tok->IsSpecial(id)) return id;
    }
    return static_cast<int32_t>(0);
  };
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(draw_id());
  std::string text;
  for (int round = 0; round < 10; ++round) {
    Result<std::string> t = tok->Decode(ids, /*skip_special_tokens=*/true);
    text = t.ok() ? *t : std::string();
    const int64_t c = counter.Count(text);
    if (c == n) break;
    if (c > n) {
      ids.resize(ids.size() - std::min<size_t>(ids.size() - 1, static_cast<size_t>(c - n)));
    } else {
      for (int64_t i = c; i < n; ++i) ids.push_back(draw_id());
    }
  }
  return text;
}

Result<std::vector<WorkloadItem>> LoadFile(const WorkloadOptions& o, const TokenCounter& counter) {
  if (o.dataset_path.empty()) return InvalidArgument("--dataset-name file needs --dataset-path FILE.jsonl");
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(o.dataset_path, size_t{1} << 30));
  std::vector<WorkloadItem> items;
  std::istringstream in(data);
  std::string line;
  int line_no = 0;
  Rng rng(o.seed);
  while (std::getline(in, line) && static_cast<int>(items.size()) < o.num_prompts) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::string where = o.dataset_path + ":" + std::to_string(line_no);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument(where + ": not a JSON object");
    WorkloadItem it;
    const auto p = j.find("prompt");
    if (p == j.end() || !p->is_string()) return InvalidArgument(where + ": want a string \"prompt\"");
    it.prompt = p->get<std::string>();
    it.max_tokens = Draw(rng, o.output_len);
    for (const char* key : {"output_len", "max_tokens"}) {
      const auto m = j.find(key);
      if (m == j.end()) continue;
      if (!m->is_number_integer() || m->get<int64_t>() <= 0 || m->get<int64_t>() > (1 << 24))
        return InvalidArgument(where + ": \"" + key + "\" must be a positive integer");
      it.max_tokens = m->get<int>();
    }
    it.prompt_tokens = counter.Count(it.prompt);
    items.push_back(std::move(it));
  }
  if (items.empty()) return InvalidArgument(o.dataset_path + ": no prompts");
  return items;
}

}  // namespace

int64_t TokenCounter::Count(std::string_view text) const {
  if (tok_ != nullptr) {
    Result<std::vector<int32_t>> ids = tok_->Encode(text, /*add_special_tokens=*/false);
    if (ids.ok()) return static_cast<int64_t>(ids->size());
  }
  return static_cast<int64_t>((text.size() + 3) / 4);
}

Result<LengthRange> ParseLengthRange(const std::string& flag, const std::string& text, double range_ratio) {
  const auto bad = [&] { return InvalidArgument(flag + ": want N or LO:HI with 0 < LO <= HI, got '" + text + "'"); };
  if (range_ratio < 0 || range_ratio >= 1) return InvalidArgument("--random-range-ratio must be in [0, 1)");
  const size_t colon = text.find(':');
  LengthRange r;
  size_t used = 0;
  try {
    if (colon == std::string::npos) {
      const int n = std::stoi(text, &used);
      if (used != text.size()) return bad();
      r.lo = static_cast<int>(std::floor(n * (1 - range_ratio)));
      r.hi = static_cast<int>(std::ceil(n * (1 + range_ratio)));
      // A zero-length prompt or output is meaningless; keep the range usable.
      r.lo = std::max(r.lo, 1);
    } else {
      r.lo = std::stoi(text.substr(0, colon), &used);
      if (used != colon) return bad();
      const std::string hi = text.substr(colon + 1);
      r.hi = std::stoi(hi, &used);
      if (used != hi.size()) return bad();
    }
  } catch (const std::exception&) {
    return bad();
  }
  if (r.lo <= 0 || r.hi < r.lo || r.hi > (1 << 24)) return bad();
  return r;
}

Result<DatasetKind> ParseDatasetKind(const std::string& name) {
  if (name == "random") return DatasetKind::kRandom;
  if (name == "shared-prefix" || name == "prefix_repetition") return DatasetKind::kSharedPrefix;
  if (name == "multi-turn") return DatasetKind::kMultiTurn;
  if (name == "file" || name == "custom") return DatasetKind::kFile;
  return InvalidArgument("--dataset-name: want random, shared-prefix, multi-turn or file, got '" + name + "'");
}

Result<std::vector<WorkloadItem>> BuildWorkload(const WorkloadOptions& o, const TokenCounter& counter) {
  if (o.num_prompts <= 0 || o.num_prompts > 10'000'000) return InvalidArgument("--num-prompts must be in [1, 1e7]");
  if (o.kind == DatasetKind::kFile) return LoadFile(o, counter);
  std::vector<WorkloadItem> items;
  items.reserve(static_cast<size_t>(o.num_prompts));
  // Each request draws from its own stream (seed, index), so changing one option (say the
  // output range) leaves the other requests' prompts as they were.
  auto item_rng = [&](int64_t i) { return Rng(Mix64(o.seed) ^ Mix64(static_cast<uint64_t>(i) + 1)); };
  switch (o.kind) {
    case DatasetKind::kRandom: {
      Rng prefix_rng(Mix64(o.seed ^ 0x5eed));
      const std::string prefix = RandomText(prefix_rng, o.random_prefix_len, counter);
      for (int i = 0; i < o.num_prompts; ++i) {
        Rng rng = item_rng(i);
        WorkloadItem it;
        const std::string body = RandomText(rng, Draw(rng, o.input_len), counter);
        it.prompt = prefix.empty() ? body : prefix + " " + body;
        it.max_tokens = Draw(rng, o.output_len);
        it.prompt_tokens = counter.Count(it.prompt);
        items.push_back(std::move(it));
      }
      break;
    }
    case DatasetKind::kSharedPrefix: {
      if (o.shared_prefix_groups <= 0 || o.shared_prefix_len < 0)
        return InvalidArgument("shared-prefix: want --shared-prefix-groups > 0 and --shared-prefix-len >= 0");
      std::vector<std::string> prefixes;
      for (int g = 0; g < o.shared_prefix_groups; ++g) {
        Rng rng(Mix64(o.seed ^ 0x9f1c) + static_cast<uint64_t>(g));
        prefixes.push_back(RandomText(rng, o.shared_prefix_len, counter));
      }
      for (int i = 0; i < o.num_prompts; ++i) {
        Rng rng = item_rng(i);
        WorkloadItem it;
        it.prompt = prefixes[static_cast<size_t>(i % o.shared_prefix_groups)] + " " +
                    RandomText(rng, Draw(rng, o.input_len), counter);
        it.max_tokens = Draw(rng, o.output_len);
        it.prompt_tokens = counter.Count(it.prompt);
        items.push_back(std::move(it));
      }
      break;
    }
    case DatasetKind::kMultiTurn: {
      if (o.multi_turn_turns <= 0) return InvalidArgument("--multi-turn-turns must be positive");
      const int turns = o.multi_turn_turns;
      const int convs = (o.num_prompts + turns - 1) / turns;
      // Turn-major order: every conversation's first turn arrives before any second turn;
      // a later turn also waits for its predecessor (depends_on).
      std::vector<int> last(static_cast<size_t>(convs), -1);
      for (int t = 0; t < turns; ++t) {
        for (int c = 0; c < convs && static_cast<int>(items.size()) < o.num_prompts; ++c) {
          Rng rng = item_rng(int64_t{c} * turns + t);
          WorkloadItem it;
          it.prompt = RandomText(rng, Draw(rng, o.input_len), counter);
          it.max_tokens = Draw(rng, o.output_len);
          it.prompt_tokens = counter.Count(it.prompt);
          it.conversation = c;
          it.turn = t;
          it.depends_on = last[static_cast<size_t>(c)];
          last[static_cast<size_t>(c)] = static_cast<int>(items.size());
          items.push_back(std::move(it));
        }
      }
      break;
    }
    case DatasetKind::kFile:
      break;
  }
  return items;
}

}  // namespace tide::bench
