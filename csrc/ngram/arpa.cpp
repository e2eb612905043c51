// ARPA reading and writing.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <numeric>
#include <utility>

#include "core_error.hpp"
#include "ngram/arpa_lines.hpp"
#include "ngram/io_util.hpp"
#include "ngram/model.hpp"
#include "parallel.hpp"

namespace aigc::ngram {

namespace {

class LineReader {
 public:
  LineReader(std::string_view text, const std::string& name) : text_(text), name_(name) {}
  // Next line without its terminator; false at end of input.
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) {
      ++line_no_;
      return false;
    }
    std::size_t nl = text_.find('\n', pos_);
    std::size_t end = nl == std::string_view::npos ? text_.size() : nl;
    line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    ++line_no_;
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(name_ + ": line " + std::to_string(line_no_) + ": " + what);
  }
  [[noreturn]] void fail_found(const std::string& expected, std::string_view line) const {
    fail("expected " + expected + ", found '" + excerpt(line) + "'");
  }
  [[noreturn]] void fail_eof(const std::string& expected) const {
    fail("unexpected end of file (truncated ARPA file?); expected " + expected);
  }
  std::size_t line_no() const { return line_no_; }

 private:
  std::string_view text_;
  const std::string& name_;
  std::size_t pos_ = 0;
  std::size_t line_no_ = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Parses a float; false for text that is not one and for values beyond the
// float range ("1e39"; "inf" and "-inf" themselves parse).
bool parse_float(std::string_view s, float& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, out);
  if (r.ec == std::errc::result_out_of_range && r.ptr == e) {
    // Denormal (kept, as strtof gives it) or huge (refused).
    out = std::strtof(std::string(s).c_str(), nullptr);
    return std::isfinite(out);
  }
  return r.ec == std::errc() && r.ptr == e;
}

// 1-based line and column of byte `offset` of `text`.
std::pair<std::size_t, std::size_t> line_of(std::string_view text, std::size_t offset) {
  std::size_t line = 1, start = 0;
  for (std::size_t i = 0; i < offset; ++i)
    if (text[i] == '\n') ++line, start = i + 1;
  return {line, offset - start + 1};
}

// Splits on runs of spaces and tabs.
std::size_t split_fields(std::string_view line, std::string_view* fields, std::size_t max_fields) {
  std::size_t n = 0, i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (n == max_fields) return max_fields + 1;
    fields[n++] = line.substr(b, i - b);
  }
  return n;
}

struct Entries {
  std::size_t n = 0;  // words per entry
  std::vector<std::uint32_t> ids;
  std::vector<float> prob, backoff;
  std::size_t size() const { return n ? ids.size() / n : 0; }
  const std::uint32_t* at(std::size_t i) const { return ids.data() + i * n; }
};

void sort_entries(Entries& e) {
  std::size_t m = e.size(), n = e.n;
  std::vector<std::uint32_t> perm(m);
  std::iota(perm.begin(), perm.end(), 0u);
  std::sort(perm.begin(), perm.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::lexicographical_compare(e.at(a), e.at(a) + n, e.at(b), e.at(b) + n);
  });
  Entries s;
  s.n = n;
  s.ids.resize(m * n);
  s.prob.resize(m);
  s.backoff.resize(m);
  for (std::size_t i = 0; i < m; ++i) {
    std::memcpy(&s.ids[i * n], e.at(perm[i]), n * sizeof(std::uint32_t));
    s.prob[i] = e.prob[perm[i]];
    s.backoff[i] = e.backoff[perm[i]];
  }
  e = std::move(s);
}

// Index of `key` (n words) in sorted entries, or kNoWord.
std::uint32_t find_entry(const Entries& e, const std::uint32_t* key) {
  std::size_t lo = 0, hi = e.size();
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (std::lexicographical_compare(e.at(mid), e.at(mid) + e.n, key, key + e.n))
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < e.size() && std::equal(key, key + e.n, e.at(lo))) return static_cast<std::uint32_t>(lo);
  return kNoWord;
}

}  // namespace

Model Model::read_arpa(const std::string& path) {
  std::string text = read_file(path);
  return parse_arpa(text, path);
}

Model Model::parse_arpa(std::string_view text, const std::string& name) {
  text = strip_bom(text);
  // Words are UTF-8: check once, up front, so that every later message (and
  // every word the model may generate) is valid text.
  if (std::size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
    auto [line_no, column] = line_of(text, bad);
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
    throw FormatError(name + ": line " + std::to_string(line_no) + ": invalid UTF-8 (byte " + byte +
                      " at column " + std::to_string(column) + "); ARPA files must be UTF-8");
  }
  LineReader in(text, name);
  std::string_view line;
  TokenMode mode = TokenMode::kWord;
  // Header; text before it is ignored, except the mode line write_arpa puts
  // there for char-mode models.
  for (;;) {
    if (!in.next(line)) in.fail_eof("the '\\data\\' header");
    std::string_view t = trim(line);
    if (t == "\\data\\") break;
    if (t.substr(0, kArpaModeHeader.size()) == kArpaModeHeader) {
      std::string_view m = trim(t.substr(kArpaModeHeader.size()));
      if (m == "char")
        mode = TokenMode::kChar;
      else if (m == "word")
        mode = TokenMode::kWord;
      else
        in.fail_found("tokenizer=word or tokenizer=char", line);
    }
  }
  std::vector<std::uint64_t> declared;
  std::vector<std::size_t> declared_line;
  for (;;) {
    if (!in.next(line)) in.fail_eof("'ngram N=count' lines or '\\1-grams:'");
    std::string_view t = trim(line);
    if (t.empty()) {
      if (declared.empty()) continue;
      break;
    }
    if (t.substr(0, 6) != "ngram ") {
      if (!declared.empty() && t == "\\1-grams:") break;
      in.fail_found("'ngram " + std::to_string(declared.size() + 1) + "=count'", line);
    }
    std::string_view rest = trim(t.substr(6));
    std::size_t eq = rest.find('=');
    unsigned long long n = 0, c = 0;
    auto r1 = std::from_chars(rest.data(), rest.data() + (eq == std::string_view::npos ? 0 : eq), n);
    std::string_view cs = eq == std::string_view::npos ? std::string_view() : trim(rest.substr(eq + 1));
    auto r2 = std::from_chars(cs.data(), cs.data() + cs.size(), c);
    if (eq == std::string_view::npos || r1.ec != std::errc() || r2.ec != std::errc() ||
        r2.ptr != cs.data() + cs.size())
      in.fail_found("'ngram " + std::to_string(declared.size() + 1) + "=count'", line);
    if (n != declared.size() + 1)
      in.fail("expected 'ngram " + std::to_string(declared.size() + 1) + "=count', found order " +
              std::to_string(n));
    if (n > static_cast<unsigned long long>(kMaxOrder))
      in.fail("order " + std::to_string(n) + " is above the supported maximum " +
              std::to_string(kMaxOrder));
    declared.push_back(c);
    declared_line.push_back(in.line_no());
  }
  if (declared.empty()) in.fail("no 'ngram N=count' lines after '\\data\\'");
  const std::size_t order = declared.size();
  if (declared[0] == 0) in.fail("the model declares no 1-grams");
  // A count the file cannot hold is refused before anything is allocated: an
  // n-gram line takes at least 2n + 1 bytes (a digit, n one-byte words, n
  // separators, a newline), so reservations stay within a few times the
  // file's size.
  {
    std::uint64_t room = text.size();
    for (std::size_t n = 1; n <= order; ++n) {
      const std::uint64_t per_line = 2 * n + 1;
      if (declared[n - 1] > room / per_line)
        throw FormatError(name + ": line " + std::to_string(declared_line[n - 1]) +
                          ": 'ngram " + std::to_string(n) + "=" + std::to_string(declared[n - 1]) +
                          "' declares more " + std::to_string(n) + "-grams than a file of " +
                          std::to_string(text.size()) + " bytes can hold (a wrong count?)");
      room -= declared[n - 1] * per_line;
    }
  }

  Model m;
  m.mode_ = mode;
  Vocabulary& vocab = m.vocab_;
  vocab.reserve(declared[0] + 3, std::min<std::uint64_t>(declared[0] * 8, text.size()));
  vocab.insert(kUnkWord);
  vocab.insert(kBosWord);
  vocab.insert(kEosWord);
  std::vector<Entries> levels(order);
  bool header_consumed = false;  // "\1-grams:" may have ended the header loop
  {
    std::string_view t = trim(line);
    header_consumed = (t == "\\1-grams:");
  }
  std::vector<char> seen_unigram;
  std::string_view fields[kMaxOrder + 3];
  for (std::size_t n = 1; n <= order; ++n) {
    std::string head = "\\" + std::to_string(n) + "-grams:";
    if (!(n == 1 && header_consumed)) {
      for (;;) {
        if (!in.next(line)) in.fail_eof("'" + head + "'");
        std::string_view t = trim(line);
        if (t.empty()) continue;
        if (t != head) in.fail_found("'" + head + "'", line);
        break;
      }
    }
    Entries& e = levels[n - 1];
    e.n = n;
    e.ids.reserve(declared[n - 1] * n);
    e.prob.reserve(declared[n - 1]);
    e.backoff.reserve(declared[n - 1]);
    std::uint32_t ids[kMaxOrder];
    for (std::uint64_t i = 0; i < declared[n - 1]; ++i) {
      auto what = [&] {
        return std::to_string(n) + "-gram " + std::to_string(i + 1) + " of " +
               std::to_string(declared[n - 1]);
      };
      if (!in.next(line)) in.fail_eof(what());
      std::size_t nf = split_fields(line, fields, n + 2);
      bool has_backoff = nf == n + 2;
      if (nf < n + 1 || nf > n + 2 || (has_backoff && n == order))
        in.fail_found(what() + " as 'log10prob<TAB>" + std::to_string(n) + " words" +
                          (n < order ? "[<TAB>backoff]'" : "'"),
                      line);
      float prob, backoff = 0.0f;
      if (!parse_float(fields[0], prob)) in.fail_found("a log10 probability", fields[0]);
      if (has_backoff && !parse_float(fields[n + 1], backoff))
        in.fail_found("a log10 backoff", fields[n + 1]);
      // -inf (probability 0) is a valid log10 probability; NaN and +inf are not.
      if (std::isnan(prob) || prob > 0.0f) in.fail_found("a log10 probability <= 0", fields[0]);
      if (!std::isfinite(backoff)) in.fail_found("a finite log10 backoff", fields[n + 1]);
      for (std::size_t k = 0; k < n; ++k) {
        if (n == 1) {
          if (!fits_mode(fields[1], mode))
            in.fail("word '" + excerpt(fields[1]) + "' cannot be a token of a " +
                    token_mode_name(mode) + "-mode model (" +
                    (mode == TokenMode::kChar ? "one character each, or <unk> <s> </s>"
                                              : "it holds a CR or NUL separator") + ")");
          std::size_t before = vocab.size();
          ids[0] = vocab.insert(fields[1]);
          if (seen_unigram.size() < vocab.size()) seen_unigram.resize(vocab.size(), 0);
          if (seen_unigram[ids[0]] && vocab.size() == before)
            in.fail("duplicate 1-gram '" + excerpt(fields[1]) + "'");
          seen_unigram[ids[0]] = 1;
        } else {
          ids[k] = vocab.find(fields[k + 1]);
          if (ids[k] == kNoWord)
            in.fail("word '" + excerpt(fields[k + 1]) + "' of " + what() + " is not in the 1-grams");
        }
      }
      e.ids.insert(e.ids.end(), ids, ids + n);
      e.prob.push_back(prob);
      e.backoff.push_back(backoff);
    }
  }
  for (;;) {
    if (!in.next(line)) in.fail_eof("'\\end\\' after " + std::to_string(declared.back()) + " " +
                                    std::to_string(order) + "-grams");
    std::string_view t = trim(line);
    if (t.empty()) continue;
    if (t != "\\end\\") in.fail_found("'\\end\\' (more n-grams than declared?)", line);
    break;
  }

  // Unigrams: index = id. Specials missing from the file get log10 prob -100
  // (as KenLM does for a missing <unk>).
  const std::size_t v = vocab.size();
  seen_unigram.resize(v, 0);
  Level l0;
  l0.word.resize(v);
  std::iota(l0.word.begin(), l0.word.end(), 0u);
  l0.prob.assign(v, -100.0f);
  l0.backoff.assign(v, 0.0f);
  {
    const Entries& e = levels[0];
    for (std::size_t i = 0; i < e.size(); ++i) {
      l0.prob[e.ids[i]] = e.prob[i];
      l0.backoff[e.ids[i]] = e.backoff[i];
    }
  }
  // Sort higher orders; add "blank" entries for missing prefixes (a context
  // absent from a pruned file), top down so their own prefixes are added too.
  for (std::size_t n = order; n >= 2; --n) sort_entries(levels[n - 1]);
  for (std::size_t n = order; n >= 3; --n) {
    Entries& hi = levels[n - 1];
    Entries& lo = levels[n - 2];
    Entries added;
    added.n = n - 1;
    for (std::size_t i = 0; i < hi.size(); ++i) {
      const std::uint32_t* key = hi.at(i);
      if (i > 0 && std::equal(key, key + n - 1, hi.at(i - 1))) continue;
      if (find_entry(lo, key) != kNoWord) continue;
      added.ids.insert(added.ids.end(), key, key + n - 1);
      added.prob.push_back(std::numeric_limits<float>::quiet_NaN());
      added.backoff.push_back(0.0f);
    }
    if (added.size()) {
      lo.ids.insert(lo.ids.end(), added.ids.begin(), added.ids.end());
      lo.prob.insert(lo.prob.end(), added.prob.begin(), added.prob.end());
      lo.backoff.insert(lo.backoff.end(), added.backoff.begin(), added.backoff.end());
      sort_entries(lo);
    }
  }
  for (std::size_t n = 2; n <= order; ++n) {
    const Entries& e = levels[n - 1];
    for (std::size_t i = 1; i < e.size(); ++i)
      if (std::equal(e.at(i), e.at(i) + n, e.at(i - 1))) {
        std::string words;
        for (std::size_t k = 0; k < n; ++k) words += (k ? " " : "") + std::string(vocab.word(e.at(i)[k]));
        throw FormatError(name + ": duplicate " + std::to_string(n) + "-gram '" + excerpt(words) + "'");
      }
  }
  // Build the trie.
  m.levels_.resize(order);
  m.levels_[0] = std::move(l0);
  for (std::size_t n = 2; n <= order; ++n) {
    Entries& e = levels[n - 1];
    Level& lv = m.levels_[n - 1];
    Level& parent = m.levels_[n - 2];
    const std::size_t cnt = e.size();
    lv.word.resize(cnt);
    lv.prob = std::move(e.prob);
    if (n < order) lv.backoff = std::move(e.backoff);
    parent.child.assign(parent.size() + 1, 0);
    // Parents in sorted order: level n-2's node order is the sorted order of
    // its entries (by id at level 0).
    const Entries* pe = n >= 3 ? &levels[n - 2] : nullptr;
    std::size_t p = 0;
    for (std::size_t i = 0; i < cnt; ++i) {
      const std::uint32_t* key = e.at(i);
      lv.word[i] = key[n - 1];
      std::size_t pi;
      if (n == 2) {
        pi = key[0];
      } else {
        while (p < pe->size() && std::lexicographical_compare(pe->at(p), pe->at(p) + n - 1, key, key + n - 1)) ++p;
        pi = p;  // exists: blanks were added above
      }
      ++parent.child[pi + 1];
    }
    for (std::size_t i = 1; i < parent.child.size(); ++i) parent.child[i] += parent.child[i - 1];
    if (n >= 3) levels[n - 2].ids.clear(), levels[n - 2].ids.shrink_to_fit();
  }
  if (order >= 2) {
    // Keep level (order-1)'s ids until the blank-probability pass below.
  }
  // Probabilities of blank entries: what backing off gives.
  for (std::size_t n = 2; n < order; ++n) {
    Level& lv = m.levels_[n - 1];
    bool any = false;
    for (float p : lv.prob) any |= std::isnan(p);
    if (!any) continue;
    // Walk the nodes with their word sequences (parents by child ranges).
    std::vector<std::vector<std::uint32_t>> parent_of(n);
    for (std::size_t k = 1; k < n; ++k) {
      const Level& pl = m.levels_[k - 1];
      parent_of[k].resize(m.levels_[k].size());
      for (std::uint32_t q = 0; q < pl.size(); ++q)
        for (std::uint32_t c = pl.child[q]; c < pl.child[q + 1]; ++c) parent_of[k][c] = q;
    }
    for (std::uint32_t i = 0; i < lv.size(); ++i) {
      if (!std::isnan(lv.prob[i])) continue;
      std::uint32_t ids[kMaxOrder];
      std::uint32_t node = i;
      for (std::size_t k = n; k-- > 0;) {
        ids[k] = m.levels_[k].word[node];
        if (k) node = parent_of[k][node];
      }
      // prob = backoff(w1..w_{n-1}) + log10 p(w_n | w2..w_{n-1}).
      std::uint32_t ctx = ids[0];
      for (std::size_t k = 1; k + 1 < n; ++k) ctx = m.find_child(k - 1, ctx, ids[k]);
      State s;
      for (std::size_t k = 1; k + 1 < n; ++k) m.advance(s, ids[k]);
      // A probability above 1 can only come from rounding or an inconsistent
      // file; it is stored as 1 so the model never holds (or writes) log10 > 0.
      lv.prob[i] = std::min(0.0f, m.levels_[n - 2].backoff[ctx] + m.score_word(s, ids[n - 1], s));
    }
  }
  m.suffix_closed_ = m.compute_suffix_closed();
  return m;
}

void Model::write_arpa(const std::string& path, unsigned threads,
                       const std::function<void(std::uint64_t)>& written) const {
  // Never write what read_arpa refuses: check the values first.
  for (std::size_t k = 0; k < levels_.size(); ++k) {
    const Level& lv = levels_[k];
    for (std::size_t i = 0; i < lv.size(); ++i)
      if (std::isnan(lv.prob[i]) || lv.prob[i] > 0.0f)
        throw CoreError("cannot write '" + path + "': " + std::to_string(k + 1) + "-gram " +
                        std::to_string(i) + " has log10 probability " + std::to_string(lv.prob[i]));
    for (std::size_t i = 0; i < lv.backoff.size(); ++i)
      if (!std::isfinite(lv.backoff[i]))
        throw CoreError("cannot write '" + path + "': " + std::to_string(k + 1) + "-gram " +
                        std::to_string(i) + " has log10 backoff " + std::to_string(lv.backoff[i]));
  }
  FileWriter out(path);
  const int n_order = order();
  out.write(arpa_header(mode_, counts()));
  // Chunks of each order's n-grams, formatted on worker threads and written in order.
  constexpr std::uint32_t kChunk = 1 << 16;
  struct Chunk {
    int n;
    std::uint32_t begin, end;
  };
  std::vector<Chunk> chunks;
  for (int n = 1; n <= n_order; ++n) {
    const std::uint32_t size = static_cast<std::uint32_t>(levels_[n - 1].size());
    chunks.push_back({n, 0, std::min(size, kChunk)});
    for (std::uint32_t b = kChunk; b < size; b += kChunk)
      chunks.push_back({n, b, std::min(size, b + kChunk)});
  }
  threads = std::min(threads == 0 ? default_thread_count() : threads, 4u);
  std::vector<ArpaLines> lines(threads, ArpaLines(vocab_, n_order));
  ordered_chunks(
      chunks.size(), threads,
      [&](unsigned worker, std::size_t c, std::string& text) {
        const Chunk& ch = chunks[c];
        const int n = ch.n;
        const Level& lv = levels_[n - 1];
        if (ch.begin == 0) text += arpa_section(n);
        if (ch.begin == ch.end) return;
        // The node at each level above: a binary search for the chunk's first
        // n-gram, then cursors that only move forward (parent q of node c:
        // child[q] <= c < child[q + 1]; childless nodes are skipped).
        std::uint32_t node[kMaxOrder];
        node[n - 1] = ch.begin;
        for (int k = n - 1; k > 0; --k) {
          const std::vector<std::uint32_t>& child = levels_[k - 1].child;
          node[k - 1] = static_cast<std::uint32_t>(
              std::upper_bound(child.begin(), child.end(), node[k]) - child.begin() - 1);
        }
        constexpr std::uint32_t kBlock = ArpaLines::kBlock;
        std::uint32_t ids[kBlock][kMaxOrder];
        const std::uint32_t* rows[kBlock];
        for (std::uint32_t j = 0; j < kBlock; ++j) rows[j] = ids[j];
        for (std::uint32_t b = ch.begin; b < ch.end; b += kBlock) {
          const std::uint32_t m = std::min(kBlock, ch.end - b);
          for (std::uint32_t j = 0; j < m; ++j) {
            node[n - 1] = b + j;
            for (int k = n - 1; k > 0; --k) {
              const std::uint32_t* child = levels_[k - 1].child.data();
              while (child[node[k - 1] + 1] <= node[k]) ++node[k - 1];
            }
            for (int k = 0; k < n; ++k) ids[j][k] = levels_[k].word[node[k]];
          }
          lines[worker].append_block(text, n, m, rows, lv.prob.data() + b,
                                     n < n_order ? lv.backoff.data() + b : nullptr);
        }
      },
      [&](std::size_t c, const std::string& text) {
        out.write(text);
        if (written) written(chunks[c].end - chunks[c].begin);
      });
  out.write(kArpaFooter);
  out.close();
}

}  // namespace aigc::ngram
