// The compact binary format: a fixed header, then the vocabulary and the
// level arrays as raw little/native-endian data, read back in one pass.
//
// Layout (all integers in the writer's byte order, checked by kEndianMark):
//   char magic[8] = "AIGCNGRM"; u32 version; u32 endian_mark; u32 order;
//   u32 mode; u64 vocab_size; u64 arena_bytes; u64 counts[order];
//   u64 offsets[vocab_size + 1]; char arena[arena_bytes]; pad to 8;
//   per level k: u32 word[c]; (k < order-1: u32 child[c+1]); f32 prob[c];
//   (k < order-1: f32 backoff[c]); pad to 8.
#include <cstring>

#include "core_error.hpp"
#include "ngram/io_util.hpp"
#include "ngram/model.hpp"

namespace aigc::ngram {

namespace {

constexpr char kMagic[8] = {'A', 'I', 'G', 'C', 'N', 'G', 'R', 'M'};
constexpr std::uint32_t kEndianMark = 0x01020304u;

std::size_t pad8(std::size_t n) { return (8 - n % 8) % 8; }

template <class T>
void put(FileWriter& out, const std::vector<T>& v) {
  out.write(v.data(), v.size() * sizeof(T));
}

}  // namespace

void Model::save_binary(const std::string& path) const {
  FileWriter out(path);
  const std::uint32_t order = static_cast<std::uint32_t>(levels_.size());
  out.write(kMagic, 8);
  std::uint32_t h32[4] = {kBinaryVersion, kEndianMark, order, static_cast<std::uint32_t>(mode_)};
  out.write(h32, sizeof h32);
  std::uint64_t h64[2] = {vocab_.size(), vocab_.arena().size()};
  out.write(h64, sizeof h64);
  for (const Level& l : levels_) {
    std::uint64_t c = l.size();
    out.write(&c, 8);
  }
  put(out, vocab_.offsets());
  out.write(vocab_.arena().data(), vocab_.arena().size());
  const char zeros[8] = {};
  out.write(zeros, pad8(vocab_.arena().size()));
  for (std::uint32_t k = 0; k < order; ++k) {
    const Level& l = levels_[k];
    put(out, l.word);
    if (k + 1 < order) put(out, l.child);
    put(out, l.prob);
    if (k + 1 < order) put(out, l.backoff);
    std::size_t bytes = l.size() * 8 + (k + 1 < order ? (l.size() + 1) * 4 + l.size() * 4 : 0);
    out.write(zeros, pad8(bytes));
  }
  out.close();
}

Model Model::load_binary(const std::string& path) {
  std::string data = read_file(path);
  auto fail = [&](const std::string& what) -> void {
    throw FormatError("'" + path + "' is not a readable n-gram binary model: " + what);
  };
  const std::size_t size = data.size();
  if (size < 40 || std::memcmp(data.data(), kMagic, 8) != 0)
    fail("missing the AIGCNGRM magic (" + std::to_string(size) + " bytes)");
  std::uint32_t h32[4];
  std::memcpy(h32, data.data() + 8, sizeof h32);
  if (h32[1] != kEndianMark) {
    if (h32[1] == 0x04030201u) fail("it was written on a machine of the other byte order");
    fail("bad byte-order mark");
  }
  if (h32[0] != kBinaryVersion)
    fail("format version " + std::to_string(h32[0]) + ", this build reads version " +
         std::to_string(kBinaryVersion));
  const std::uint32_t order = h32[2];
  if (order < 1 || order > static_cast<std::uint32_t>(kMaxOrder))
    fail("order " + std::to_string(order) + " out of range");
  if (h32[3] > 1) fail("unknown tokenisation mode " + std::to_string(h32[3]));
  std::uint64_t h64[2];
  std::memcpy(h64, data.data() + 24, sizeof h64);
  const std::uint64_t v = h64[0], arena = h64[1];
  std::size_t pos = 40;
  if (size < pos + order * 8) fail("truncated header (" + std::to_string(size) + " bytes)");
  std::vector<std::uint64_t> counts(order);
  std::memcpy(counts.data(), data.data() + pos, order * 8);
  pos += order * 8;
  // Expected total size, computed with overflow-safe checks.
  const std::uint64_t kLimit = 1ull << 40;
  if (v < 3 || v > kLimit || arena > kLimit || counts[0] != v) fail("inconsistent vocabulary size");
  std::uint64_t expected = pos + (v + 1) * 8 + arena + pad8(arena);
  for (std::uint32_t k = 0; k < order; ++k) {
    std::uint64_t c = counts[k];
    if (c > kLimit) fail("implausible count at order " + std::to_string(k + 1));
    std::uint64_t bytes = c * 8 + (k + 1 < order ? (c + 1) * 4 + c * 4 : 0);
    expected += bytes + pad8(bytes);
  }
  if (size != expected)
    fail("size is " + std::to_string(size) + " bytes, the header implies " +
         std::to_string(expected) + (size < expected ? " (truncated file)" : ""));
  Model m;
  m.mode_ = static_cast<TokenMode>(h32[3]);
  std::vector<std::uint64_t> offsets(v + 1);
  std::memcpy(offsets.data(), data.data() + pos, (v + 1) * 8);
  pos += (v + 1) * 8;
  if (offsets[0] != 0 || offsets[v] != arena) fail("bad vocabulary offsets");
  for (std::uint64_t i = 0; i < v; ++i)
    if (offsets[i + 1] < offsets[i]) fail("bad vocabulary offsets");
  std::string words(data.data() + pos, arena);
  pos += arena + pad8(arena);
  if (!m.vocab_.assign(std::move(words), std::move(offsets))) fail("duplicate vocabulary word");
  if (m.vocab_.word(kUnk) != kUnkWord || m.vocab_.word(kBos) != kBosWord ||
      m.vocab_.word(kEos) != kEosWord)
    fail("the first words are not <unk> <s> </s>");
  auto take = [&](auto& vec, std::uint64_t n) {
    using T = typename std::decay_t<decltype(vec)>::value_type;
    vec.resize(n);
    std::memcpy(vec.data(), data.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
  };
  m.levels_.resize(order);
  for (std::uint32_t k = 0; k < order; ++k) {
    Level& l = m.levels_[k];
    std::uint64_t c = counts[k];
    take(l.word, c);
    if (k + 1 < order) take(l.child, c + 1);
    take(l.prob, c);
    if (k + 1 < order) take(l.backoff, c);
    std::uint64_t bytes = c * 8 + (k + 1 < order ? (c + 1) * 4 + c * 4 : 0);
    pos += pad8(bytes);
    for (std::uint32_t w : l.word)
      if (w >= v) fail("word id out of range at order " + std::to_string(k + 1));
    if (k + 1 < order) {
      if (l.child[0] != 0 || l.child[c] != counts[k + 1])
        fail("bad child index at order " + std::to_string(k + 1));
      for (std::uint64_t i = 0; i < c; ++i)
        if (l.child[i + 1] < l.child[i]) fail("bad child index at order " + std::to_string(k + 1));
    }
  }
  for (std::uint64_t i = 0; i < v; ++i)
    if (m.levels_[0].word[i] != i) fail("bad unigram table");
  return m;
}

}  // namespace aigc::ngram
