// Bounded stage 1: corpus count. The corpus is read block by block (a file)
// or sliced (a text in memory); each line becomes "<s> w1 .. wm </s>" and
// every position after <s> gives its backward window (the word, the one
// before, ... back to <s>, at most N words). Windows are counted in sorted
// blocks that spill as runs.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core_error.hpp"
#include "ngram/external.hpp"

namespace aigc::ngram::stages {

namespace {

template <int N>
class WindowCounter {
 public:
  WindowCounter(External& ex, WindowSorter<N>& sorter) : ex_(ex), sorter_(sorter) {
    ex.vocab.insert(kUnkWord);
    ex.vocab.insert(kBosWord);
    ex.vocab.insert(kEosWord);
  }

  // Lines of `text` (all complete except possibly the last, when `last`);
  // `offset`: the offset of text[0] in the corpus.
  void lines(std::string_view text, std::uint64_t offset) {
    std::size_t i = 0;
    while (i < text.size()) {
      std::size_t nl = text.find('\n', i);
      std::size_t le = nl == std::string_view::npos ? text.size() : nl;
      line(text.substr(i, le - i), offset + i);
      i = le + 1;
    }
  }

 private:
  void line(std::string_view text, std::uint64_t offset) {
    ++line_no_;
    ids_.clear();
    ids_.push_back(kBos);
    for_each_token(text, ex_.plan.mode, static_cast<std::size_t>(offset), [&](std::string_view tok) {
      std::uint32_t id = ex_.vocab.insert(tok);
      if (id == kBos || id == kEos) throw_reserved(tok, line_no_);
      ids_.push_back(id);
    });
    ids_.push_back(kEos);
    ex_.words += ids_.size() - 2;
    ++ex_.sentences;
    ex_.windows += ids_.size() - 1;
    if (ex_.windows >= kSentinel)
      throw CoreError("the corpus is too large for this build (4G tokens)");
    WindowCount<N> wc;
    wc.count = 1;
    for (std::size_t p = 1; p < ids_.size(); ++p) {
      int j = 0;
      std::size_t q = p;
      while (j < N) {
        wc.w[j++] = ids_[q];
        if (q == 0) break;
        --q;
      }
      for (; j < N; ++j) wc.w[j] = kSentinel;
      sorter_.push(wc);
    }
  }

  External& ex_;
  WindowSorter<N>& sorter_;
  std::vector<std::uint32_t> ids_;
  std::uint64_t line_no_ = 0;
};

}  // namespace

template <int N>
void count_windows(External& ex, std::string_view corpus, bool is_path) {
  const Plan& plan = ex.plan;
  const std::size_t block = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(ex.budget / 32, 1 << 16, 8 << 20));
  // Room for the vocabulary to grow while counting.
  const std::size_t bytes = ex.available(block + ex.budget / 8);
  auto sorter = std::make_unique<WindowSorter<N>>(ex.dir, "windows", bytes, WindowLess<N>{},
                                                  &combine_windows<N>, plan.threads > 1);
  WindowCounter<N> counter(ex, *sorter);
  std::uint64_t total = 0;
  if (!is_path) {
    if (corpus.empty()) throw std::invalid_argument("the corpus is empty: it has no lines");
    plan.begin("counting n-grams", corpus.size());
    for (std::size_t at = 0; at < corpus.size();) {
      std::size_t end = std::min(corpus.size(), at + block);
      if (end < corpus.size()) {
        std::size_t nl = corpus.find('\n', end);
        end = nl == std::string_view::npos ? corpus.size() : nl + 1;
      }
      counter.lines(corpus.substr(at, end - at), at);
      plan.advance(end - at);
      at = end;
    }
  } else {
    const std::string path(corpus);
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw CoreError("cannot open '" + path + "': " + std::strerror(errno));
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
    std::uint64_t size = 0;
    if (std::fseek(f, 0, SEEK_END) == 0) {
      long s = std::ftell(f);
      if (s > 0) size = static_cast<std::uint64_t>(s);
      std::fseek(f, 0, SEEK_SET);
    }
    plan.begin("counting n-grams", size);
    std::string buf(block, '\0');
    std::size_t carry = 0;
    std::uint64_t offset = 0;  // of buf[0] in the file
    for (;;) {
      if (carry == buf.size()) buf.resize(buf.size() * 2);  // a line longer than the block
      std::size_t got = std::fread(&buf[carry], 1, buf.size() - carry, f);
      if (got == 0) {
        if (std::ferror(f)) throw CoreError("error while reading '" + path + "'");
        if (carry > 0) counter.lines(std::string_view(buf.data(), carry), offset);
        total += carry;
        break;
      }
      std::size_t have = carry + got;
      std::size_t last = std::string_view(buf.data(), have).rfind('\n');
      if (last == std::string_view::npos) {
        carry = have;
        continue;
      }
      counter.lines(std::string_view(buf.data(), last + 1), offset);
      plan.advance(last + 1);
      total += last + 1;
      offset += last + 1;
      carry = have - (last + 1);
      std::memmove(&buf[0], buf.data() + last + 1, carry);
    }
    if (total == 0) throw std::invalid_argument("the corpus is empty: it has no lines");
  }
  if (ex.words == 0) throw std::invalid_argument("the corpus is empty: it has no words");
  sorter->finish();
  ex.window_sorter = std::move(sorter);
}

#define AIGC_INSTANTIATE(N) template void count_windows<N>(External&, std::string_view, bool);
AIGC_INSTANTIATE(1)
AIGC_INSTANTIATE(2)
AIGC_INSTANTIATE(3)
AIGC_INSTANTIATE(4)
AIGC_INSTANTIATE(5)
AIGC_INSTANTIATE(6)
AIGC_INSTANTIATE(7)
AIGC_INSTANTIATE(8)
#undef AIGC_INSTANTIATE

}  // namespace aigc::ngram::stages
