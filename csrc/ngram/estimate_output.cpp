// Sinks of the bounded estimator: the model's trie, or an ARPA file written
// as it comes (the bytes of Model::write_arpa).
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core_error.hpp"
#include "ngram/arpa_lines.hpp"
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
  Impl(const std::string& path, TokenMode m, std::size_t chunk_bytes, bool bg)
      : out(path), mode(m), chunk_words(std::max<std::size_t>(chunk_bytes / 4, 1024)), background(bg) {}
  FileWriter out;
  TokenMode mode;
  std::optional<ArpaLines> lines;
  std::vector<std::uint64_t> counts;
  int section = 0;  // the last order whose header is written
  std::string buf;
  // Binary records [n, ids..., prob bits, backoff bits], formatted by format().
  std::size_t chunk_words;
  bool background;
  std::vector<std::uint32_t> chunk;
  std::thread worker;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<std::uint32_t>> queue;
  bool closing = false;
  std::exception_ptr error;

  void open_sections(int upto) {
    while (section < upto) buf += arpa_section(++section);
  }
  void format(const std::vector<std::uint32_t>& recs) {
    // Records [n, ids..., prob bits, backoff bits], in blocks of one order.
    constexpr std::size_t kBlock = ArpaLines::kBlock;
    const std::uint32_t* ids[kBlock];
    float prob[kBlock], backoff[kBlock];
    std::size_t i = 0;
    while (i < recs.size()) {
      const int n = static_cast<int>(recs[i]);
      std::size_t m = 0;
      for (; m < kBlock && i < recs.size() && recs[i] == static_cast<std::uint32_t>(n); ++m) {
        ids[m] = &recs[i + 1];
        std::memcpy(&prob[m], &recs[i + 1 + n], 4);
        std::memcpy(&backoff[m], &recs[i + 2 + n], 4);
        i += 3 + static_cast<std::size_t>(n);
      }
      open_sections(n);
      lines->append_block(buf, n, m, ids, prob, backoff);
      if (buf.size() >= (1u << 20)) {
        out.write(buf);
        buf.clear();
      }
    }
  }
  void submit() {
    if (chunk.empty()) return;
    if (!background) {
      format_and_flush(chunk);
      chunk.clear();
      return;
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return queue.size() < 2 || error; });
    if (error) std::rethrow_exception(error);
    queue.push_back(std::move(chunk));
    chunk = std::vector<std::uint32_t>();
    chunk.reserve(chunk_words + 16);
    cv.notify_all();
  }
  void format_and_flush(const std::vector<std::uint32_t>& recs) {
    format(recs);
    out.write(buf);
    buf.clear();
  }
  void run() {
    for (;;) {
      std::vector<std::uint32_t> recs;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || closing; });
        if (queue.empty()) return;
        recs = std::move(queue.front());
        queue.pop_front();
        cv.notify_all();
      }
      try {
        format_and_flush(recs);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        error = std::current_exception();
        queue.clear();
        cv.notify_all();
        return;
      }
    }
  }
  void stop() {
    if (!worker.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      closing = true;
      cv.notify_all();
    }
    worker.join();
  }
};

ArpaSink::ArpaSink(const std::string& path, TokenMode mode, std::size_t chunk_bytes,
                   bool background)
    : impl_(new Impl(path, mode, chunk_bytes, background)) {}
ArpaSink::~ArpaSink() {
  impl_->stop();
  delete impl_;
}

void ArpaSink::start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) {
  impl_->lines.emplace(vocab, static_cast<int>(counts.size()));
  impl_->counts = counts;
  impl_->out.write(arpa_header(impl_->mode, counts));
  impl_->chunk.reserve(impl_->chunk_words + 16);
  if (impl_->background) impl_->worker = std::thread([this] { impl_->run(); });
}

void ArpaSink::add(int n, const std::uint32_t* ids, float prob, float backoff,
                   std::uint64_t /*child_begin*/) {
  Impl& s = *impl_;
  std::vector<std::uint32_t>& c = s.chunk;
  c.push_back(static_cast<std::uint32_t>(n));
  c.insert(c.end(), ids, ids + n);
  std::uint32_t bits;
  std::memcpy(&bits, &prob, 4);
  c.push_back(bits);
  std::memcpy(&bits, &backoff, 4);
  c.push_back(bits);
  if (c.size() >= s.chunk_words) s.submit();
}

void ArpaSink::finish() {
  Impl& s = *impl_;
  s.submit();
  s.stop();
  if (s.error) std::rethrow_exception(s.error);
  s.open_sections(static_cast<int>(s.counts.size()));
  s.buf += kArpaFooter;
  s.out.write(s.buf);
  s.buf.clear();
  s.out.close();
}

}  // namespace aigc::ngram::stages
