#pragma once
// Word <-> id table of an n-gram model: an arena of strings and an
// open-addressing hash index. Ids are dense, assigned in insertion order.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aigc::ngram {

// Ids of the special words, fixed in every model (as in KenLM's builder).
constexpr std::uint32_t kUnk = 0;
constexpr std::uint32_t kBos = 1;
constexpr std::uint32_t kEos = 2;
constexpr std::uint32_t kNoWord = 0xFFFFFFFFu;

inline constexpr std::string_view kUnkWord = "<unk>";
inline constexpr std::string_view kBosWord = "<s>";
inline constexpr std::string_view kEosWord = "</s>";

std::uint64_t hash_bytes(std::string_view s);

class Vocabulary {
 public:
  Vocabulary();

  // Returns the id of `word`, adding it when absent.
  std::uint32_t insert(std::string_view word) { return insert_hashed(word, hash_bytes(word)); }
  // The same with a precomputed hash_bytes(word).
  std::uint32_t insert_hashed(std::string_view word, std::uint64_t hash);
  // Hints the cache about the slot of a hash (for batched inserts).
  void prefetch(std::uint64_t hash) const {
    __builtin_prefetch(slots_.data() + (static_cast<std::uint32_t>(hash) & (slots_.size() - 1)));
  }
  // The id of `word`, or kNoWord.
  std::uint32_t find(std::string_view word) const { return find_hashed(word, hash_bytes(word)); }
  std::uint32_t find_hashed(std::string_view word, std::uint64_t hash) const;
  std::string_view word(std::uint32_t id) const {
    return std::string_view(arena_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  // Hints the cache about where word(id) is: its offset (step 1), then its
  // bytes (step 2, once the offset is likely cached).
  void prefetch_word(std::uint32_t id, int step) const {
    if (step == 1)
      __builtin_prefetch(offsets_.data() + id);
    else
      __builtin_prefetch(arena_.data() + offsets_[id]);
  }
  std::size_t size() const { return offsets_.size() - 1; }
  void reserve(std::size_t words, std::size_t bytes);

  // Raw access for the binary format.
  const std::string& arena() const { return arena_; }
  const std::vector<std::uint64_t>& offsets() const { return offsets_; }
  // Rebuilds from an arena and offsets (size() + 1 entries); returns false on
  // a duplicate word.
  bool assign(std::string arena, std::vector<std::uint64_t> offsets);

 private:
  void grow();
  std::string arena_;
  std::vector<std::uint64_t> offsets_;  // size() + 1
  // Open addressing: each slot holds (hash << 32 | (id + 1)), 0 = empty.
  std::vector<std::uint64_t> slots_;
};

}  // namespace aigc::ngram
