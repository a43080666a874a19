#include "formats/weight_store.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace tide {

namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string JoinPath(const std::string& dir, const std::string& file) {
  if (dir.empty() || dir.back() == '/') return dir + file;
  return dir + "/" + file;
}

// Reads `weight_map` (tensor name -> shard file name) from an index file.
Status ReadIndex(const std::string& path, std::map<std::string, std::string>* weight_map) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(path + ": not valid JSON: " + std::string(e.what()).substr(0, 240));
  }
  if (!index.is_object()) return DataLoss(path + ": not a JSON object");
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) return DataLoss(path + ": 'weight_map' missing or not an object");
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) return DataLoss(path + ": weight_map entry " + Quote(name) + " is not a string");
    const std::string& file = shard.get_ref<const std::string&>();
    // Shards live beside the index; a path would let an index reach outside the folder.
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      return DataLoss(path + ": weight_map entry " + Quote(name) + " names shard " + Quote(file) +
                      ", which is not a plain file name");
    }
    (*weight_map)[name] = file;
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<WeightStore>> WeightStore::OpenHfFolder(const std::string& dir) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  store->source_ = dir;
  const std::string single = JoinPath(dir, kSingleFile);
  const std::string index_path = JoinPath(dir, kIndexFile);
  if (FileExists(single)) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single));
    for (const TensorInfo& t : file->tensors()) store->by_name_.emplace(t.name, t);
    store->st_files_.push_back(std::move(file));
    return store;
  }
  if (!FileExists(index_path)) {
    return NotFound(dir + ": neither " + kSingleFile + " nor " + kIndexFile + " found");
  }

  std::map<std::string, std::string> weight_map;
  RETURN_IF_ERROR(ReadIndex(index_path, &weight_map));
  std::set<std::string> shards;
  for (const auto& [name, shard] : weight_map) shards.insert(shard);
  for (const std::string& shard : shards) {
    const std::string shard_path = JoinPath(dir, shard);
    if (!FileExists(shard_path)) return NotFound(index_path + ": shard " + Quote(shard) + " does not exist");
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(shard_path));
    for (const TensorInfo& t : file->tensors()) {
      auto [it, inserted] = store->by_name_.emplace(t.name, t);
      if (!inserted) {
        return DataLoss(dir + ": tensor " + Quote(t.name) + " is in two shards: " + it->second.file + " and " +
                        t.file);
      }
    }
    store->st_files_.push_back(std::move(file));
  }
  // A tensor the index places in a shard must be there (and nowhere else, checked above).
  for (const auto& [name, shard] : weight_map) {
    const std::string shard_path = JoinPath(dir, shard);
    auto it = store->by_name_.find(name);
    if (it == store->by_name_.end()) {
      return DataLoss(index_path + ": tensor " + Quote(name) + " is listed in shard " + shard_path +
                      " but absent from it");
    }
    if (it->second.file != shard_path) {
      return DataLoss(index_path + ": tensor " + Quote(name) + " is listed in shard " + shard_path +
                      " but found in " + it->second.file);
    }
  }
  return store;
}

Result<std::unique_ptr<WeightStore>> WeightStore::FromGguf(std::unique_ptr<GgufFile> gguf) {
  if (gguf == nullptr) return InvalidArgument("WeightStore::FromGguf: no file");
  std::unique_ptr<WeightStore> store(new WeightStore());
  store->source_ = gguf->path();
  for (const TensorInfo& t : gguf->tensors()) store->by_name_.emplace(t.name, t);
  store->gguf_ = std::move(gguf);
  return store;
}

const TensorInfo* WeightStore::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

Result<const TensorInfo*> WeightStore::Get(const std::string& name, const Shape& expected) const {
  const TensorInfo* t = Find(name);
  if (t == nullptr) {
    if (gguf_ != nullptr) {
      auto it = gguf_->unsupported_tensors().find(name);
      if (it != gguf_->unsupported_tensors().end()) {
        return Unimplemented("tensor " + Quote(name) + " in " + source_ + " has ggml type " +
                             std::string(GgmlTypeName(it->second)) + " (" + std::to_string(it->second) +
                             "), which tide does not read");
      }
    }
    return NotFound("missing tensor " + name + " in " + source_);
  }
  if (t->shape != expected) {
    return InvalidArgument("tensor " + Quote(name) + " in " + t->file + " has shape " + t->shape.ToString() +
                           ", expected " + expected.ToString());
  }
  return t;
}

int64_t WeightStore::Prefetch(const std::function<void(int64_t, int64_t)>& progress) const {
  int64_t total = 0;
  for (const auto& [name, t] : by_name_) total += static_cast<int64_t>(t.nbytes);
  // One byte per page is enough to fault the page in; the volatile sink keeps the
  // compiler from dropping the reads.
  constexpr uint64_t kPage = 4096, kChunk = uint64_t{16} << 20;
  volatile uint8_t sink = 0;
  int64_t done = 0;
  for (const auto& [name, t] : by_name_) {
    for (uint64_t off = 0; off < t.nbytes; off += kChunk) {
      const uint64_t end = std::min<uint64_t>(t.nbytes, off + kChunk);
      uint8_t acc = 0;
      for (uint64_t p = off; p < end; p += kPage) acc ^= t.data[p];
      acc ^= t.data[end - 1];
      sink = static_cast<uint8_t>(sink ^ acc);
      done += static_cast<int64_t>(end - off);
      if (progress && done < total) progress(done, total);
    }
  }
  (void)sink;
  if (progress) progress(total, total);
  return total;
}

}  // namespace tide
