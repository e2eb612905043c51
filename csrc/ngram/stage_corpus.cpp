// Stage 1 (in memory): the corpus becomes one id array per chunk of whole
// lines, "<s> w1 .. wm </s> <s> ...", tokenised in parallel; the chunks'
// vocabularies are merged so that ids are in order of first occurrence.
#include <algorithm>
#include <stdexcept>

#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"

namespace aigc::ngram::stages {

std::uint64_t line_of_offset(std::string_view text, std::size_t offset) {
  return 1 + static_cast<std::uint64_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

void throw_reserved(std::string_view word, std::uint64_t line) {
  throw std::invalid_argument("line " + std::to_string(line) +
                              " of the corpus contains the reserved word " + std::string(word) +
                              " (lmplz rejects it too); remove it");
}

namespace {

void tokenize_chunk(std::string_view text, std::size_t begin, std::size_t end, TokenMode mode,
                    Chunk& out) {
  Vocabulary& vocab = out.vocab;
  vocab.insert(kUnkWord);
  vocab.insert(kBosWord);
  vocab.insert(kEosWord);
  out.ids.reserve((end - begin) / 5 + 16);
  std::size_t i = begin;
  std::vector<std::string_view> toks;
  std::vector<std::uint64_t> hashes;
  while (i < end) {
    std::size_t nl = text.find('\n', i);
    std::size_t le = (nl == std::string_view::npos || nl > end) ? end : nl;
    out.ids.push_back(kBos);
    toks.clear();
    for_each_token(text.substr(i, le - i), mode, i, [&](std::string_view tok) { toks.push_back(tok); });
    // Hash and prefetch the whole line first: the table lookups then overlap.
    hashes.resize(toks.size());
    for (std::size_t t = 0; t < toks.size(); ++t) {
      hashes[t] = hash_bytes(toks[t]);
      vocab.prefetch(hashes[t]);
    }
    for (std::size_t t = 0; t < toks.size(); ++t) {
      std::uint32_t id = vocab.insert_hashed(toks[t], hashes[t]);
      if (id == kBos || id == kEos) {
        std::size_t off = static_cast<std::size_t>(toks[t].data() - text.data());
        throw_reserved(toks[t], line_of_offset(text, off));
      }
      out.ids.push_back(id);
    }
    out.words += toks.size();
    out.ids.push_back(kEos);
    ++out.sentences;
    i = le + 1;
  }
}

}  // namespace

std::vector<Chunk> read_corpus(std::string_view text, const Plan& plan, Vocabulary& vocab,
                               std::uint64_t& sentences, std::uint64_t& words) {
  const unsigned nchunks = text.size() < (1u << 18) ? 1u : plan.threads;
  std::vector<std::size_t> cut(nchunks + 1, text.size());
  cut[0] = 0;
  for (unsigned c = 1; c < nchunks; ++c) {
    std::size_t at = std::max(cut[c - 1], text.size() * c / nchunks);
    std::size_t nl = text.find('\n', at);
    cut[c] = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  std::vector<Chunk> chunks(nchunks);
  run_threads(nchunks, [&](unsigned c) { tokenize_chunk(text, cut[c], cut[c + 1], plan.mode, chunks[c]); });
  std::uint64_t positions = 0;
  sentences = words = 0;
  for (const Chunk& c : chunks) {
    sentences += c.sentences;
    words += c.words;
    positions += c.ids.size();
  }
  if (words == 0) throw std::invalid_argument("the corpus is empty: it has no words");
  if (positions >= kSentinel) throw CoreError("the corpus is too large for this build (4G tokens)");
  // Merge vocabularies: chunk 0's ids stay, later chunks are remapped.
  vocab = std::move(chunks[0].vocab);
  for (unsigned c = 1; c < nchunks; ++c) {
    Vocabulary& local = chunks[c].vocab;
    std::vector<std::uint32_t> map(local.size());
    for (std::uint32_t i = 0; i < local.size(); ++i) map[i] = vocab.insert(local.word(i));
    for (std::uint32_t& id : chunks[c].ids) id = map[id];
    local = Vocabulary();
  }
  plan.advance(text.size());
  return chunks;
}

}  // namespace aigc::ngram::stages
