#include "ngram/vocab.hpp"

#include <cstring>

namespace aigc::ngram {

std::uint64_t hash_bytes(std::string_view s) {
  // 64-bit multiply-xorshift over 8-byte blocks (not cryptographic).
  const std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0xC6A4A7935BD1E995ull ^ (s.size() * kMul);
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    std::uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * kMul;
    h ^= h >> 29;
  }
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

Vocabulary::Vocabulary() : offsets_{0}, slots_(64, 0) {}

void Vocabulary::reserve(std::size_t words, std::size_t bytes) {
  arena_.reserve(bytes);
  offsets_.reserve(words + 1);
  hashes_.reserve(words);
  std::size_t want = 64;
  while (want < words * 2) want <<= 1;
  if (want > slots_.size()) {
    slots_.assign(want, 0);
    std::size_t mask = want - 1;
    for (std::uint32_t id = 0; id < size(); ++id) {
      std::size_t i = hashes_[id] & mask;
      while (slots_[i]) i = (i + 1) & mask;
      slots_[i] = id + 1;
    }
  }
}

void Vocabulary::grow() { reserve(slots_.size(), arena_.size()); }

std::uint32_t Vocabulary::find(std::string_view word) const {
  std::uint32_t h = static_cast<std::uint32_t>(hash_bytes(word));
  std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    std::uint32_t s = slots_[i];
    if (!s) return kNoWord;
    if (hashes_[s - 1] == h && this->word(s - 1) == word) return s - 1;
  }
}

std::uint32_t Vocabulary::insert(std::string_view word) {
  std::uint32_t h = static_cast<std::uint32_t>(hash_bytes(word));
  std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  for (;; i = (i + 1) & mask) {
    std::uint32_t s = slots_[i];
    if (!s) break;
    if (hashes_[s - 1] == h && this->word(s - 1) == word) return s - 1;
  }
  std::uint32_t id = static_cast<std::uint32_t>(size());
  arena_.append(word.data(), word.size());
  offsets_.push_back(arena_.size());
  hashes_.push_back(h);
  slots_[i] = id + 1;
  if ((size() + 1) * 2 > slots_.size()) grow();
  return id;
}

bool Vocabulary::assign(std::string arena, std::vector<std::uint64_t> offsets) {
  arena_ = std::move(arena);
  offsets_ = std::move(offsets);
  std::size_t n = size();
  hashes_.resize(n);
  for (std::size_t id = 0; id < n; ++id)
    hashes_[id] = static_cast<std::uint32_t>(hash_bytes(word(static_cast<std::uint32_t>(id))));
  std::size_t want = 64;
  while (want < n * 2 + 2) want <<= 1;
  slots_.assign(want, 0);
  std::size_t mask = want - 1;
  for (std::uint32_t id = 0; id < n; ++id) {
    std::size_t i = hashes_[id] & mask;
    for (; slots_[i]; i = (i + 1) & mask)
      if (hashes_[slots_[i] - 1] == hashes_[id] && word(slots_[i] - 1) == word(id)) return false;
    slots_[i] = id + 1;
  }
  return true;
}

}  // namespace aigc::ngram
