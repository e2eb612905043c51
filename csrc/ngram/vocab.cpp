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
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

Vocabulary::Vocabulary() : offsets_{0}, slots_(64, 0) {}

namespace {
inline std::uint32_t slot_hash(std::uint64_t h) { return static_cast<std::uint32_t>(h >> 32); }
}  // namespace

void Vocabulary::reserve(std::size_t words, std::size_t bytes) {
  arena_.reserve(bytes);
  offsets_.reserve(words + 1);
  std::size_t want = 64;
  while (want < words * 2) want <<= 1;
  if (want > slots_.size()) {
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    slots_.assign(want, 0);
    std::size_t mask = want - 1;
    for (std::uint64_t e : old) {
      if (!e) continue;
      std::size_t i = slot_hash(e) & mask;
      while (slots_[i]) i = (i + 1) & mask;
      slots_[i] = e;
    }
  }
}

void Vocabulary::grow() { reserve(slots_.size(), arena_.size()); }

std::uint32_t Vocabulary::find(std::string_view word) const {
  const std::uint32_t h = static_cast<std::uint32_t>(hash_bytes(word));
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    std::uint64_t e = slots_[i];
    if (!e) return kNoWord;
    if (slot_hash(e) == h) {
      std::uint32_t id = static_cast<std::uint32_t>(e) - 1;
      if (this->word(id) == word) return id;
    }
  }
}

std::uint32_t Vocabulary::insert_hashed(std::string_view word, std::uint64_t hash) {
  const std::uint32_t h = static_cast<std::uint32_t>(hash);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  for (;; i = (i + 1) & mask) {
    std::uint64_t e = slots_[i];
    if (!e) break;
    if (slot_hash(e) == h) {
      std::uint32_t id = static_cast<std::uint32_t>(e) - 1;
      if (this->word(id) == word) return id;
    }
  }
  std::uint32_t id = static_cast<std::uint32_t>(size());
  arena_.append(word.data(), word.size());
  offsets_.push_back(arena_.size());
  slots_[i] = (static_cast<std::uint64_t>(h) << 32) | (id + 1);
  if ((size() + 1) * 2 > slots_.size()) grow();
  return id;
}

bool Vocabulary::assign(std::string arena, std::vector<std::uint64_t> offsets) {
  arena_ = std::move(arena);
  offsets_ = std::move(offsets);
  const std::size_t n = size();
  std::size_t want = 64;
  while (want < n * 2 + 2) want <<= 1;
  slots_.assign(want, 0);
  const std::size_t mask = want - 1;
  for (std::uint32_t id = 0; id < n; ++id) {
    std::uint32_t h = static_cast<std::uint32_t>(hash_bytes(word(id)));
    std::size_t i = h & mask;
    for (; slots_[i]; i = (i + 1) & mask) {
      std::uint32_t other = static_cast<std::uint32_t>(slots_[i]) - 1;
      if (slot_hash(slots_[i]) == h && word(other) == word(id)) return false;
    }
    slots_[i] = (static_cast<std::uint64_t>(h) << 32) | (id + 1);
  }
  return true;
}

}  // namespace aigc::ngram
