// Sinks of the bounded estimator: the model's trie, or an ARPA file written
// as it comes (the bytes of Model::write_arpa).
#include <string>

#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"
#include "ngram/io_util.hpp"

namespace aigc::ngram::stages {

void TrieSink::start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) {
  model_.mutable_vocab() = vocab;
  counts_ = counts;
  std::vector<Level>& levels = model_.mutable_levels();
  const std::size_t order = counts.size();
  levels.assign(order, Level());
  for (std::size_t k = 0; k < order; ++k) {
    levels[k].word.reserve(counts[k]);
    levels[k].prob.reserve(counts[k]);
    if (k + 1 < order) {
      levels[k].backoff.reserve(counts[k]);
      levels[k].child.reserve(counts[k] + 1);
    }
  }
}

void TrieSink::add(int n, const std::uint32_t* ids, float prob, float backoff,
                   std::uint64_t child_begin) {
  Level& lv = model_.mutable_levels()[n - 1];
  lv.word.push_back(ids[n - 1]);
  lv.prob.push_back(prob);
  if (static_cast<std::size_t>(n) < counts_.size()) {
    lv.backoff.push_back(backoff);
    lv.child.push_back(static_cast<std::uint32_t>(child_begin));
  }
}

void TrieSink::finish() {
  std::vector<Level>& levels = model_.mutable_levels();
  for (std::size_t k = 0; k + 1 < levels.size(); ++k)
    levels[k].child.push_back(static_cast<std::uint32_t>(levels[k + 1].size()));
  for (std::size_t k = 0; k < levels.size(); ++k)
    if (levels[k].size() != counts_[k])
      throw CoreError("internal error: order " + std::to_string(k + 1) + " has " +
                      std::to_string(levels[k].size()) + " n-grams, expected " +
                      std::to_string(counts_[k]));
}

struct ArpaSink::Impl {
  explicit Impl(const std::string& path) : out(path) {}
  FileWriter out;
  const Vocabulary* vocab = nullptr;
  std::vector<std::uint64_t> counts;
  int section = 0;  // the last order whose header is written
  std::string buf;
  void open_sections(int upto) {
    while (section < upto) {
      ++section;
      out.write("\n\\" + std::to_string(section) + "-grams:\n");
    }
  }
};

ArpaSink::ArpaSink(const std::string& path) : impl_(new Impl(path)) {}
ArpaSink::~ArpaSink() { delete impl_; }

void ArpaSink::start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) {
  impl_->vocab = &vocab;
  impl_->counts = counts;
  std::string head = "\\data\\\n";
  for (std::size_t n = 1; n <= counts.size(); ++n)
    head += "ngram " + std::to_string(n) + "=" + std::to_string(counts[n - 1]) + "\n";
  impl_->out.write(head);
}

void ArpaSink::add(int n, const std::uint32_t* ids, float prob, float backoff,
                   std::uint64_t /*child_begin*/) {
  Impl& s = *impl_;
  s.open_sections(n);
  std::string& buf = s.buf;
  char num[48];
  buf.clear();
  buf.append(num, format_float(prob, num));
  buf.push_back('\t');
  for (int k = 0; k < n; ++k) {
    if (k) buf.push_back(' ');
    buf.append(s.vocab->word(ids[k]));
  }
  if (static_cast<std::size_t>(n) < s.counts.size()) {
    buf.push_back('\t');
    buf.append(num, format_float(backoff, num));
  }
  buf.push_back('\n');
  s.out.write(buf);
}

void ArpaSink::finish() {
  impl_->open_sections(static_cast<int>(impl_->counts.size()));
  impl_->out.write("\n\\end\\\n");
  impl_->out.close();
}

}  // namespace aigc::ngram::stages
