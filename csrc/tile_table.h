// The tile table: which block tile a CUDA launch site takes, per problem, where a tuner has timed
// the site's tiles on a GPU (convkernels.tiles, `python -m bench --tune`). A site that can launch
// several tiles (the channels_last implicit GEMMs: conv_kernel.cuh, wgrad_kernel.cuh) names its
// problem by a key and its tiles by name ("128x64": block rows x columns); the table maps keys to
// tile names. Where the table has no entry for the key, or names a tile the site cannot launch
// there (a table tuned on another GPU, or with CONVKERNELS_TMA=0), the site's own heuristic
// chooses. Recording lists the choices the sites made (key, candidates, choice), which is how the
// tuner learns what to time. Process-wide; each library (convkernels._C, convkernels._simt) keeps
// its own.
#pragma once

#include <algorithm>
#include <atomic>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace convkernels {

class TileTable {
 public:
  using Entries = std::unordered_map<std::string, std::string>;

  // One choice a site made while recording: its candidates comma-separated, in the site's order.
  struct Choice {
    std::string key, candidates, chosen;
  };

  // Index in `names` of the tile to launch: the table's, else `heuristic`. make_key() builds the
  // key, only where the table is in use (a launch with an empty table and no recording builds none).
  template <class MakeKey>
  int choose(MakeKey&& make_key, std::initializer_list<std::string_view> names, int heuristic) {
    if (!in_use_.load(std::memory_order_acquire)) return heuristic;
    const std::string key = make_key();
    std::lock_guard<std::mutex> lock(mutex_);
    const auto index_of = [&](std::string_view tile) {
      return static_cast<int>(std::find(names.begin(), names.end(), tile) - names.begin());
    };
    const int count = static_cast<int>(names.size());
    int chosen = heuristic;
    if (const auto entry = entries_.find(key); entry != entries_.end()) {
      const int named = index_of(entry->second);
      if (named < count) chosen = named;
    }
    if (recording_ && recorded_keys_.insert(key).second) {
      // Each tile once: a site may list one tile twice (3xTF32's wide tile is its narrow one).
      std::string candidates;
      for (int i = 0; i < count; ++i) {
        if (index_of(names.begin()[i]) == i) (candidates += candidates.empty() ? "" : ",") += names.begin()[i];
      }
      choices_.push_back({key, std::move(candidates), std::string(names.begin()[chosen])});
    }
    return chosen;
  }

  // A copy of the entries.
  Entries entries() {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_;
  }

  // Replaces the entries and returns the previous ones.
  Entries exchange(Entries entries) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::swap(entries, entries_);
    update_in_use();
    return entries;
  }

  // Starts a recording (dropping any unfinished one), or ends it and returns its choices, each key
  // once, in the order first made.
  std::vector<Choice> record(bool start) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Choice> choices = std::exchange(choices_, {});
    recorded_keys_.clear();
    recording_ = start;
    update_in_use();
    return start ? std::vector<Choice>{} : choices;
  }

 private:
  void update_in_use() { in_use_.store(recording_ || !entries_.empty(), std::memory_order_release); }

  std::atomic<bool> in_use_{false};
  std::mutex mutex_;
  Entries entries_;
  bool recording_ = false;
  std::vector<Choice> choices_;
  std::unordered_set<std::string> recorded_keys_;
};

inline TileTable& tile_table() {
  static TileTable table;
  return table;
}

}  // namespace convkernels
