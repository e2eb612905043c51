// The compact binary format: a fixed header, then the vocabulary and the
// level arrays as raw little/native-endian data, read back in one pass.
//
// Layout (all integers in the writer's byte order, checked by kEndianMark):
//   char magic[8] = "AIGCNGRM"; u32 version; u32 endian_mark; u32 order;
//   u32 flags (bits 0-7: tokenisation mode; bit 8: suffix-closed); u64 vocab_size; u64 arena_bytes; u64 counts[order];
//   u64 offsets[vocab_size + 1]; char arena[arena_bytes]; pad to 8;
//   per level k: u32 word[c]; (k < order-1: u32 child[c+1]); f32 prob[c];
//   (k < order-1: f32 backoff[c]); pad to 8;
//   (version 2) u64 checksum of every byte before it (Checksum, io_util.hpp).
// Loading reads each array straight into place (one pass, no copy), then
// validates the content: the checksum (version 2), UTF-8 words that fit the
// mode, children sorted without duplicates, log10 probabilities <= 0 (or
// -inf), finite backoffs. Version 1 files (no checksum) still load.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core_error.hpp"
#include "ngram/io_util.hpp"
#include "ngram/model.hpp"

namespace aigc::ngram {

namespace {

constexpr char kMagic[8] = {'A', 'I', 'G', 'C', 'N', 'G', 'R', 'M'};
constexpr std::uint32_t kEndianMark = 0x01020304u;
constexpr std::uint32_t kFlagSuffixClosed = 1u << 8;

std::size_t pad8(std::size_t n) { return (8 - n % 8) % 8; }

template <class T>
void put(FileWriter& out, const std::vector<T>& v) {
  out.write(v.data(), v.size() * sizeof(T));
}

}  // namespace

void Model::save_binary(const std::string& path) const {
  FileWriter out(path);
  Checksum sum;
  out.set_checksum(&sum);
  const std::uint32_t order = static_cast<std::uint32_t>(levels_.size());
  out.write(kMagic, 8);
  std::uint32_t flags = static_cast<std::uint32_t>(mode_) | (suffix_closed_ ? kFlagSuffixClosed : 0u);
  std::uint32_t h32[4] = {kBinaryVersion, kEndianMark, order, flags};
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
  out.set_checksum(nullptr);
  const std::uint64_t digest = sum.digest();
  out.write(&digest, 8);
  out.close();
}

namespace {

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) throw CoreError("cannot open '" + path + "': " + std::strerror(errno));
    if (std::fseek(file_, 0, SEEK_END) != 0) throw CoreError("cannot seek in '" + path + "'");
    size_ = static_cast<std::uint64_t>(std::ftell(file_));
    std::fseek(file_, 0, SEEK_SET);
  }
  ~Reader() { std::fclose(file_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  std::uint64_t size() const { return size_; }
  void read(void* out, std::size_t n) {
    if (n && std::fread(out, 1, n, file_) != n)
      throw FormatError("'" + path_ + "': read error or unexpected end of file");
    if (sum_) sum_->update(out, n);
  }
  void set_checksum(Checksum* sum) { sum_ = sum; }
  template <class T>
  void read_vector(std::vector<T>& v, std::uint64_t n) {
    v.resize(n);
    read(v.data(), n * sizeof(T));
  }
  void skip(std::size_t n) {
    char pad[8];
    read(pad, n);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0;
  Checksum* sum_ = nullptr;
};


}  // namespace

Model Model::load_binary(const std::string& path) {
  Reader in(path);
  Checksum sum;
  in.set_checksum(&sum);
  auto fail = [&](const std::string& what) -> void {
    throw FormatError("'" + path + "' is not a readable n-gram binary model: " + what);
  };
  const std::uint64_t size = in.size();
  char magic[8] = {};
  if (size < 40) fail("missing the AIGCNGRM magic (" + std::to_string(size) + " bytes)");
  in.read(magic, 8);
  if (std::memcmp(magic, kMagic, 8) != 0)
    fail("missing the AIGCNGRM magic (" + std::to_string(size) + " bytes)");
  std::uint32_t h32[4];
  in.read(h32, sizeof h32);
  if (h32[1] != kEndianMark) {
    if (h32[1] == 0x04030201u) fail("it was written on a machine of the other byte order");
    fail("bad byte-order mark");
  }
  const std::uint32_t version = h32[0];
  if (version < 1 || version > kBinaryVersion)
    fail("format version " + std::to_string(version) + ", this build reads versions 1 to " +
         std::to_string(kBinaryVersion));
  const std::uint32_t order = h32[2];
  if (order < 1 || order > static_cast<std::uint32_t>(kMaxOrder))
    fail("order " + std::to_string(order) + " out of range");
  if ((h32[3] & 0xFFu) > 1 || (h32[3] & ~(0xFFu | kFlagSuffixClosed)) != 0)
    fail("unknown flags " + std::to_string(h32[3]));
  std::uint64_t h64[2];
  in.read(h64, sizeof h64);
  const std::uint64_t v = h64[0], arena = h64[1];
  std::uint64_t pos = 40;
  if (size < pos + order * 8) fail("truncated header (" + std::to_string(size) + " bytes)");
  std::vector<std::uint64_t> counts(order);
  in.read(counts.data(), order * 8);
  pos += order * 8;
  // Expected total size, with overflow-safe bounds.
  const std::uint64_t kLimit = 1ull << 40;
  if (v < 3 || v > kLimit || arena > kLimit || counts[0] != v) fail("inconsistent vocabulary size");
  std::uint64_t expected = pos + (v + 1) * 8 + arena + pad8(arena);
  for (std::uint32_t k = 0; k < order; ++k) {
    std::uint64_t c = counts[k];
    if (c > kLimit) fail("implausible count at order " + std::to_string(k + 1));
    std::uint64_t bytes = c * 8 + (k + 1 < order ? (c + 1) * 4 + c * 4 : 0);
    expected += bytes + pad8(bytes);
  }
  if (version >= 2) expected += 8;  // the checksum
  if (size != expected)
    fail("size is " + std::to_string(size) + " bytes, the header implies " +
         std::to_string(expected) + (size < expected ? " (truncated file)" : ""));
  Model m;
  m.mode_ = static_cast<TokenMode>(h32[3] & 0xFFu);
  m.suffix_closed_ = (h32[3] & kFlagSuffixClosed) != 0;
  std::vector<std::uint64_t> offsets;
  in.read_vector(offsets, v + 1);
  if (offsets[0] != 0 || offsets[v] != arena) fail("bad vocabulary offsets");
  for (std::uint64_t i = 0; i < v; ++i)
    if (offsets[i + 1] < offsets[i]) fail("bad vocabulary offsets");
  std::string words(arena, '\0');
  in.read(words.data(), arena);
  in.skip(pad8(arena));
  if (!m.vocab_.assign(std::move(words), std::move(offsets))) fail("duplicate vocabulary word");
  if (m.vocab_.word(kUnk) != kUnkWord || m.vocab_.word(kBos) != kBosWord ||
      m.vocab_.word(kEos) != kEosWord)
    fail("the first words are not <unk> <s> </s>");
  m.levels_.resize(order);
  for (std::uint32_t k = 0; k < order; ++k) {
    Level& l = m.levels_[k];
    std::uint64_t c = counts[k];
    in.read_vector(l.word, c);
    if (k + 1 < order) in.read_vector(l.child, c + 1);
    in.read_vector(l.prob, c);
    if (k + 1 < order) in.read_vector(l.backoff, c);
    std::uint64_t bytes = c * 8 + (k + 1 < order ? (c + 1) * 4 + c * 4 : 0);
    in.skip(pad8(bytes));
    for (std::uint32_t w : l.word)
      if (w >= v) fail("word id out of range at order " + std::to_string(k + 1));
    if (k + 1 < order) {
      if (l.child[0] != 0 || l.child[c] != counts[k + 1])
        fail("bad child index at order " + std::to_string(k + 1));
      for (std::uint64_t i = 0; i < c; ++i)
        if (l.child[i + 1] < l.child[i]) fail("bad child index at order " + std::to_string(k + 1));
    }
  }
  if (version >= 2) {
    in.set_checksum(nullptr);
    std::uint64_t stored = 0;
    in.read(&stored, 8);
    if (stored != sum.digest()) fail("the checksum does not match the content (damaged file)");
  }
  for (std::uint64_t i = 0; i < v; ++i)
    if (m.levels_[0].word[i] != i) fail("bad unigram table");
  // Content: the words, then each level's order and values.
  {
    const std::string& arena_text = m.vocab_.arena();
    if (std::size_t bad = find_invalid_utf8(arena_text); bad != std::string_view::npos) {
      std::uint64_t id = 0;
      while (id + 1 < v && m.vocab_.offsets()[id + 1] <= bad) ++id;
      fail("word " + std::to_string(id) + " is not valid UTF-8");
    }
    for (std::uint32_t id = 0; id < v; ++id)
      if (!fits_mode(m.vocab_.word(id), m.mode_))
        fail("word " + std::to_string(id) + " '" + excerpt(m.vocab_.word(id)) +
             "' cannot be a token of a " + token_mode_name(m.mode_) + "-mode model");
  }
  for (std::uint32_t k = 0; k < order; ++k) {
    const Level& l = m.levels_[k];
    const std::string at = " at order " + std::to_string(k + 1);
    for (float p : l.prob)
      if (std::isnan(p) || p > 0.0f) fail("a log10 probability is NaN or above 0" + at);
    for (float b : l.backoff)
      if (!std::isfinite(b)) fail("a log10 backoff is not finite" + at);
    if (k + 1 < order) {
      const std::vector<std::uint32_t>& words = m.levels_[k + 1].word;
      for (std::uint64_t i = 0; i < l.size(); ++i)
        for (std::uint32_t c = l.child[i] + 1; c < l.child[i + 1]; ++c)
          if (words[c] <= words[c - 1])
            fail("the children of a " + std::to_string(k + 1) + "-gram are not sorted or repeat a word" +
                 " at order " + std::to_string(k + 2));
    }
  }
  if (m.suffix_closed_ && !m.compute_suffix_closed()) fail("the suffix-closed flag is wrong");
  return m;
}

}  // namespace aigc::ngram
