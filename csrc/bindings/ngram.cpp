// Bindings of csrc/ngram (registered by module.cpp): aigc_engine._core.NgramModel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "bindings/common.hpp"
#include "ngram/estimate.hpp"
#include "ngram/generate.hpp"
#include "ngram/io_util.hpp"
#include "ngram/model.hpp"

namespace py = pybind11;

namespace aigc::bindings {

namespace {

using ngram::Model;

// The Python-visible object: the model plus caches that belong to it.
class PyNgram {
 public:
  explicit PyNgram(Model m) : model(std::move(m)) {}
  Model model;
  std::optional<ngram::EstimateInfo> info;

  const ngram::TopKIndex& topk_index() {
    std::call_once(topk_once_, [&] { topk_ = std::make_unique<ngram::TopKIndex>(model, 0); });
    return *topk_;
  }

 private:
  std::once_flag topk_once_;
  std::unique_ptr<ngram::TopKIndex> topk_;
};

bool is_path(const py::handle& obj) {
  return py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__");
}

std::string fspath(const py::handle& obj) {
  return py::str(py::module_::import("os").attr("fspath")(obj));
}

// fspath() of a file that must exist (FileNotFoundError otherwise).
std::string existing_file(const py::handle& obj) {
  std::string path = fspath(obj);
  if (!py::module_::import("os").attr("path").attr("isfile")(path).cast<bool>()) {
    py::object err = py::module_::import("builtins").attr("FileNotFoundError")(
        2, "No such file", path);
    PyErr_SetObject(PyExc_FileNotFoundError, err.ptr());
    throw py::error_already_set();
  }
  return path;
}

// The UTF-8 text of a str argument. A str that cannot be encoded (lone
// surrogates, e.g. undecodable command-line bytes) is a ValueError naming the
// parameter, a non-str a TypeError: never pybind11's "incompatible function
// arguments" listing.
std::string utf8_arg(const py::handle& obj, const char* name) {
  if (!PyUnicode_Check(obj.ptr()))
    throw py::type_error(std::string(name) + " must be a str, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  Py_ssize_t len = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &len);
  if (!data) {
    PyErr_Clear();
    throw std::invalid_argument(std::string(name) +
                                " is not valid text: it holds a lone surrogate (bytes that are "
                                "not UTF-8, e.g. from a terminal in another encoding)");
  }
  return std::string(data, static_cast<std::size_t>(len));
}

// The bytes of a text file for the core: a leading UTF-8 byte-order mark is
// dropped (it is not part of the first word).
std::string read_text_file(const std::string& path) {
  std::string text = ngram::read_file(path);
  if (text.compare(0, 3, ngram::kUtf8Bom) == 0) text.erase(0, 3);
  return text;
}

bool starts_with_bom(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char head[3] = {};
  const std::size_t got = std::fread(head, 1, 3, f);
  std::fclose(f);
  return got == 3 && std::string_view(head, 3) == ngram::kUtf8Bom;
}

// A sequence of lines joined with '\n' (each string is one sentence).
std::string join_lines(const py::handle& obj) {
  if (py::isinstance<py::bytes>(obj))
    throw std::invalid_argument("expected a path or a sequence of str lines, got bytes");
  std::string text;
  for (const py::handle& item : obj) {
    if (!py::isinstance<py::str>(item))
      throw std::invalid_argument("expected a sequence of str lines, found an item of type " +
                                  std::string(py::str(py::type::of(item).attr("__name__"))));
    text += utf8_arg(item, "a line");
    text.push_back('\n');
  }
  return text;
}

std::vector<std::uint32_t> to_ids(const PyNgram& self, const py::handle& context) {
  std::vector<std::uint32_t> ids;
  const std::size_t v = self.model.vocab_size();
  if (py::isinstance<py::str>(context))
    throw py::type_error("context must be a sequence of words or ids, not a str (use tokenize())");
  for (const py::handle& item : context) {
    long long id;
    if (py::isinstance<py::str>(item)) {
      id = self.model.index(utf8_arg(item, "a context word"));
    } else {
      if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
        throw py::type_error("context items must be str words or int ids, got " +
                             std::string(py::str(py::type::of(item).attr("__name__"))));
      int overflow = 0;
      id = PyLong_AsLongLongAndOverflow(py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr())).ptr(),
                                        &overflow);
      if (overflow || id < 0 || static_cast<std::size_t>(id) >= v)
        throw std::out_of_range("word id " + std::string(py::str(item)) +
                                " is outside the vocabulary of " + std::to_string(v) + " words");
    }
    ids.push_back(static_cast<std::uint32_t>(id));
  }
  return ids;
}

sampling::SamplingParams sampling_params(float temperature, int top_k, float top_p, float min_p,
                                         float repetition_penalty, float presence_penalty,
                                         float frequency_penalty) {
  sampling::SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = repetition_penalty;
  p.presence_penalty = presence_penalty;
  p.frequency_penalty = frequency_penalty;
  return p;
}

ngram::GenerateResult run_generate(PyNgram& s, const std::vector<std::uint32_t>& ids,
                                   const ngram::GenerateOptions& o) {
  py::gil_scoped_release release;
  const int top_k = o.params.top_k;
  const bool need_index = top_k > 0 && static_cast<std::size_t>(top_k) < s.model.vocab_size();
  const ngram::TopKIndex* ix = need_index ? &s.topk_index() : nullptr;
  return ngram::generate(s.model, ix, ids.data(), ids.size(), o);
}

ngram::State state_after(const Model& m, const std::vector<std::uint32_t>& ids, bool bos) {
  ngram::State s = bos ? m.begin_sentence_state() : m.null_state();
  for (std::uint32_t id : ids) m.advance(s, id);
  return s;
}

py::dict stats_dict(const ngram::PerplexityStats& st) {
  py::dict d;
  d["log10_prob"] = st.log10_prob;
  d["tokens"] = st.tokens;
  d["oov"] = st.oov;
  d["sentences"] = st.sentences;
  d["perplexity"] = st.perplexity();
  d["perplexity_excluding_oov"] = st.tokens > st.oov ? st.perplexity_excluding_oov() : NAN;
  return d;
}

// The estimator's options from the Python arguments (validated).
ngram::EstimateOptions estimate_options(int order, const std::string& mode,
                                        const std::optional<std::vector<float>>& discount_fallback,
                                        const std::optional<std::vector<std::uint64_t>>& prune,
                                        unsigned threads, const py::object& memory,
                                        const py::object& temp_dir) {
  ngram::EstimateOptions opt;
  ngram::check_order(order);
  opt.order = order;
  opt.mode = ngram::parse_token_mode(mode);
  if (discount_fallback) {
    if (discount_fallback->empty())
      throw std::invalid_argument("discount_fallback must hold 1 to 3 discounts, got none");
    opt.discount_fallback = *discount_fallback;
  }
  if (prune) opt.prune = *prune;
  opt.threads = threads;
  if (py::isinstance<py::str>(memory)) {
    std::string text = memory.cast<std::string>();
    opt.memory = text.empty() ? 0 : ngram::parse_memory_size(text);
    if (!text.empty() && opt.memory == 0)
      throw std::invalid_argument("memory '" + text + "' is 0 bytes; pass None for no budget");
  } else if (py::isinstance<py::int_>(memory) && !py::isinstance<py::bool_>(memory)) {
    long long bytes = memory.cast<long long>();
    if (bytes < 0) throw std::invalid_argument("memory must be >= 0 bytes, got " + std::to_string(bytes));
    opt.memory = static_cast<std::uint64_t>(bytes);
  } else if (!memory.is_none()) {
    throw std::invalid_argument("memory must be a size such as '100M', '2G', '25%', a number of "
                                "bytes, or None");
  }
  if (!temp_dir.is_none()) opt.temp_dir = fspath(temp_dir);
  return opt;
}

// Runs `work` (which touches no Python object) with the GIL released. With a
// progress callback, `work` runs on a worker thread while this thread polls
// the estimator's progress and calls callback(stage, done, total) with the
// GIL held; Ctrl-C (or an exception from the callback) cancels the work,
// which stops at its next check, and is raised once the worker has ended.
template <class Fn>
void run_estimation(Fn&& work, const py::object& callback, ngram::EstimateProgress& progress) {
  if (callback.is_none()) {
    py::gil_scoped_release release;
    work();
    return;
  }
  std::exception_ptr error;
  bool finished = false;
  std::mutex mu;
  std::condition_variable cv;
  std::thread worker([&] {
    try {
      work();
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
    cv.notify_all();
  });
  struct Joiner {
    std::thread& t;
    ngram::EstimateProgress& p;
    ~Joiner() {
      if (t.joinable()) {
        p.cancel();
        py::gil_scoped_release release;
        t.join();
      }
    }
  } joiner{worker, progress};
  int seen = 0;
  std::uint64_t last_done = ~std::uint64_t{0};
  for (;;) {
    bool end;
    {
      py::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(mu);
      end = cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return finished; });
    }
    const int index = progress.stage_index();
    const std::uint64_t done = progress.done();
    if (index > 0 && (index != seen || done != last_done)) {
      std::uint64_t total = 0;
      std::string stage = progress.stage(&total);
      callback(stage, done, total);  // an exception cancels (Joiner)
      seen = index;
      last_done = done;
    }
    if (end) break;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // cancels (Joiner)
  }
  {
    py::gil_scoped_release release;
    worker.join();
  }
  if (error) std::rethrow_exception(error);
}

py::dict info_dict(const ngram::EstimateInfo& info) {
  py::dict d;
  d["sentences"] = info.sentences;
  d["tokens"] = info.tokens;
  d["spill_runs"] = info.spill_runs;
  d["spill_bytes"] = info.spill_bytes;
  d["spilled_orders"] = info.spilled_orders;
  return d;
}

}  // namespace

void register_ngram(py::module_& m) {
  m.attr("NGRAM_MAX_ORDER") = ngram::kMaxOrder;
  m.attr("NGRAM_BINARY_VERSION") = ngram::kBinaryVersion;

  py::class_<PyNgram, std::shared_ptr<PyNgram>> cls(m, "NgramModel", R"doc(
An n-gram language model: modified Kneser-Ney estimation exactly as KenLM's
lmplz, ARPA and binary I/O, KenLM-compatible scoring, and generation.

Scores from score/score_batch/perplexity are log10 (as KenLM); the
generation-facing next_logprobs/top_k return natural logs. Word ids are
fixed for the specials: <unk> = 0, <s> = 1, </s> = 2.
)doc");

  cls.def_static(
      "estimate",
      [](const py::object& source, int order, const std::string& mode,
         std::optional<std::vector<float>> discount_fallback,
         std::optional<std::vector<std::uint64_t>> prune, unsigned threads,
         const py::object& memory, const py::object& temp_dir, const py::object& progress) {
        ngram::EstimateOptions opt =
            estimate_options(order, mode, discount_fallback, prune, threads, memory, temp_dir);
        ngram::EstimateProgress state;
        opt.progress = &state;
        ngram::EstimateInfo info;
        std::optional<Model> model;
        if (is_path(source)) {
          std::string path = existing_file(source);
          if (starts_with_bom(path))  // the mark is not part of the first word
            run_estimation([&] { model.emplace(ngram::estimate(read_text_file(path), opt, &info)); },
                           progress, state);
          else
            run_estimation([&] { model.emplace(ngram::estimate_file(path, opt, &info)); }, progress,
                           state);
        } else {
          std::string text = join_lines(source);
          run_estimation([&] { model.emplace(ngram::estimate(text, opt, &info)); }, progress, state);
        }
        auto out = std::make_shared<PyNgram>(std::move(*model));
        out->info = std::move(info);
        return out;
      },
      py::arg("source"), py::arg("order"), py::kw_only(), py::arg("mode") = "word",
      py::arg("discount_fallback") = py::none(), py::arg("prune") = py::none(),
      py::arg("threads") = 0, py::arg("memory") = py::none(), py::arg("temp_dir") = py::none(),
      py::arg("progress") = py::none(),
      R"doc(Estimates a model like `lmplz -o ORDER`.

source: a path (str or os.PathLike) of a text with one sentence per line, or a
sequence of str, one sentence each. order: 1..NGRAM_MAX_ORDER. mode: "word"
(tokens split on space, tab, CR, LF, NUL) or "char" (every Unicode character a
token; whitespace runs inside a line become the token "\u2581").
discount_fallback: None (a discount that cannot be estimated raises CoreError)
or 1-3 discounts for adjusted counts 1, 2, 3+ used for the orders where the
estimate fails (lmplz --discount_fallback, whose default is [0.5, 1, 1.5]).
prune: None or thresholds per order as lmplz --prune (first 0, non-decreasing;
n-grams of order >= 2 with raw count <= threshold are removed).
threads: 0 = all cores.
memory: None (everything in memory) or a budget as lmplz -S ("100M", "2G",
"25%" of RAM, or an int of bytes): counting, sorting and the estimation work
on blocks that spill to sorted runs in temp_dir and merge; the model is the
same, bit for bit. The returned model itself is held in memory (see
estimate_arpa for a model larger than the budget).
temp_dir: where the spill files go (as lmplz -T; None = $TMPDIR or /tmp); they
are removed on success and on failure.
progress: None or a callable progress(stage, done, total) called from this
thread as the work goes on (total 0 when unknown); Ctrl-C cancels.)doc");

  cls.def_static(
      "estimate_text",
      [](const py::object& text_obj, int order, const std::string& mode,
         std::optional<std::vector<float>> discount_fallback,
         std::optional<std::vector<std::uint64_t>> prune, unsigned threads,
         const py::object& memory, const py::object& temp_dir, const py::object& progress) {
        if (!py::isinstance<py::str>(text_obj) && !py::isinstance<py::bytes>(text_obj))
          throw std::invalid_argument("estimate_text expects str or bytes (UTF-8)");
        std::string text = py::isinstance<py::str>(text_obj) ? utf8_arg(text_obj, "text")
                                                              : text_obj.cast<std::string>();
        ngram::EstimateOptions opt =
            estimate_options(order, mode, discount_fallback, prune, threads, memory, temp_dir);
        ngram::EstimateProgress state;
        opt.progress = &state;
        ngram::EstimateInfo info;
        std::optional<Model> model;
        run_estimation([&] { model.emplace(ngram::estimate(text, opt, &info)); }, progress, state);
        auto out = std::make_shared<PyNgram>(std::move(*model));
        out->info = std::move(info);
        return out;
      },
      py::arg("text"), py::arg("order"), py::kw_only(), py::arg("mode") = "word",
      py::arg("discount_fallback") = py::none(), py::arg("prune") = py::none(),
      py::arg("threads") = 0, py::arg("memory") = py::none(), py::arg("temp_dir") = py::none(),
      py::arg("progress") = py::none(),
      "As estimate(), from one str or UTF-8 bytes holding the whole text (lines separated by \\n).");

  cls.def_static(
      "estimate_arpa",
      [](const py::object& source, const py::object& arpa, int order, const std::string& mode,
         std::optional<std::vector<float>> discount_fallback,
         std::optional<std::vector<std::uint64_t>> prune, unsigned threads,
         const py::object& memory, const py::object& temp_dir, const py::object& progress) {
        ngram::EstimateOptions opt =
            estimate_options(order, mode, discount_fallback, prune, threads, memory, temp_dir);
        ngram::EstimateProgress state;
        opt.progress = &state;
        ngram::EstimateInfo info;
        std::string out = fspath(arpa);
        if (is_path(source)) {
          std::string path = existing_file(source);
          run_estimation([&] { ngram::estimate_to_arpa(path, true, out, opt, &info); }, progress, state);
        } else {
          std::string text = join_lines(source);
          run_estimation([&] { ngram::estimate_to_arpa(text, false, out, opt, &info); }, progress, state);
        }
        return info_dict(info);
      },
      py::arg("source"), py::arg("arpa"), py::arg("order"), py::kw_only(), py::arg("mode") = "word",
      py::arg("discount_fallback") = py::none(), py::arg("prune") = py::none(),
      py::arg("threads") = 0, py::arg("memory") = py::none(), py::arg("temp_dir") = py::none(),
      py::arg("progress") = py::none(),
      R"doc(Estimates like estimate() and writes the model to the ARPA file `arpa` (the
bytes write_arpa writes) without holding it in memory: with a memory budget,
peak memory stays near the budget whatever the corpus size, as lmplz.
Returns {"sentences", "tokens", "spill_runs", "spill_bytes", "spilled_orders"}
(orders whose probabilities spilled too: those of two adjacent orders took
more than 60% of the budget).)doc");

  m.def(
      "parse_memory_size", [](const std::string& text) { return ngram::parse_memory_size(text); },
      py::arg("text"),
      "Bytes of a memory size as lmplz -S reads it ('100M', '2G', '25%'; no suffix = K).");

  cls.def_static(
      "read_arpa",
      [](const py::object& path) {
        std::string p = existing_file(path);
        std::optional<Model> model;
        {
          py::gil_scoped_release release;
          model.emplace(Model::read_arpa(p));
        }
        return std::make_shared<PyNgram>(std::move(*model));
      },
      py::arg("path"),
      "Reads an ARPA file (KenLM, SRILM, pruned). Missing backoffs are 0; a missing context "
      "n-gram is added with the probability backing off gives; missing <unk>/<s>/</s> get log10 "
      "prob -100. Raises ModelFormatError naming the line on malformed or truncated input.");
  cls.def_static(
      "load_binary",
      [](const py::object& path) {
        std::string p = existing_file(path);
        std::optional<Model> model;
        {
          py::gil_scoped_release release;
          model.emplace(Model::load_binary(p));
        }
        return std::make_shared<PyNgram>(std::move(*model));
      },
      py::arg("path"),
      "Loads a file written by save_binary (ModelFormatError for another format version, "
      "another byte order, or a truncated file).");
  cls.def(
      "write_arpa",
      [](PyNgram& self, const py::object& path, unsigned threads) {
        std::string p = fspath(path);
        py::gil_scoped_release release;
        self.model.write_arpa(p, threads);
      },
      py::arg("path"), py::kw_only(), py::arg("threads") = 0,
      "Writes the model as an ARPA file (loadable by KenLM); the lines are formatted on "
      "`threads` threads (0 = all cores, at most 4), the bytes the same for any count.");
  cls.def(
      "save_binary",
      [](PyNgram& self, const py::object& path) {
        std::string p = fspath(path);
        py::gil_scoped_release release;
        self.model.save_binary(p);
      },
      py::arg("path"), "Writes the compact binary format (version NGRAM_BINARY_VERSION).");

  cls.def_property_readonly("order", [](const PyNgram& s) { return s.model.order(); }, "The order N.");
  cls.def_property_readonly("counts", [](const PyNgram& s) { return s.model.counts(); },
                            "Number of n-grams per order, [1-grams, 2-grams, ...].");
  cls.def_property_readonly("vocab_size", [](const PyNgram& s) { return s.model.vocab_size(); },
                            "Number of words, including <unk>, <s> and </s>.");
  cls.def_property_readonly("mode", [](const PyNgram& s) { return std::string(ngram::token_mode_name(s.model.mode())); },
                            "Tokenisation mode, 'word' or 'char'.");
  // Fixed ids of the special words (class attributes).
  cls.attr("unk_id") = ngram::kUnk;
  cls.attr("bos_id") = ngram::kBos;
  cls.attr("eos_id") = ngram::kEos;
  cls.def_property_readonly(
      "discounts",
      [](const PyNgram& s) -> py::object {
        if (!s.info) return py::none();
        py::list out;
        for (const auto& d : s.info->discounts) out.append(py::make_tuple(d[1], d[2], d[3]));
        return out;
      },
      "For an estimated model, the (D1, D2, D3+) discounts per order; None for a loaded one.");
  cls.def_property_readonly(
      "fallback_used",
      [](const PyNgram& s) -> py::object {
        if (!s.info) return py::none();
        return py::cast(std::vector<bool>(s.info->fallback_used.begin(), s.info->fallback_used.end()));
      },
      "For an estimated model, per order whether discount_fallback was used.");
  cls.def_property_readonly(
      "estimate_stats",
      [](const PyNgram& s) -> py::object {
        if (!s.info) return py::none();
        return info_dict(*s.info);
      },
      "For an estimated model, {'sentences', 'tokens', 'spill_runs', 'spill_bytes', "
      "'spilled_orders'}; None for a loaded one.");
  cls.def(
      "index", [](const PyNgram& s, const py::object& w) { return s.model.index(utf8_arg(w, "word")); },
      py::arg("word"),
      "Id of `word`; 0 (<unk>) if it is not in the vocabulary.");
  cls.def(
      "__contains__",
      [](const PyNgram& s, const py::object& w) {
        if (!py::isinstance<py::str>(w)) return false;
        Py_ssize_t len = 0;
        const char* data = PyUnicode_AsUTF8AndSize(w.ptr(), &len);
        if (!data) {  // not valid text: not a word of the model
          PyErr_Clear();
          return false;
        }
        return s.model.vocab().find(std::string_view(data, static_cast<std::size_t>(len))) != ngram::kNoWord;
      },
      py::arg("word"));
  cls.def(
      "word",
      [](const PyNgram& s, long long id) {
        if (id < 0 || static_cast<std::size_t>(id) >= s.model.vocab_size())
          throw std::out_of_range("word id " + std::to_string(id) + " is outside the vocabulary of " +
                                  std::to_string(s.model.vocab_size()) + " words");
        return std::string(s.model.vocab().word(static_cast<std::uint32_t>(id)));
      },
      py::arg("id"), "The word of an id (IndexError when out of range).");
  cls.def(
      "tokenize",
      [](const PyNgram& s, const py::object& line) { return ngram::tokenize(utf8_arg(line, "line"), s.model.mode()); },
      py::arg("line"), "The tokens of one line in this model's mode.");
  cls.def(
      "detokenize",
      [](const PyNgram& s, const py::handle& ids) {
        std::vector<std::uint32_t> v = to_ids(s, ids);
        const bool chars = s.model.mode() == ngram::TokenMode::kChar;
        std::string out;
        bool line_start = true;
        for (std::uint32_t id : v) {
          if (id == ngram::kBos) continue;
          if (id == ngram::kEos) {
            out.push_back('\n');
            line_start = true;
            continue;
          }
          std::string_view w = s.model.vocab().word(id);
          if (chars) {
            out.append(w == ngram::kSpaceToken ? std::string_view(" ") : w);
          } else {
            if (!line_start) out.push_back(' ');
            out.append(w);
          }
          line_start = false;
        }
        return out;
      },
      py::arg("ids"),
      "Text of word ids: words joined by spaces (word mode) or characters concatenated with "
      "\u2581 as a space (char mode); <s> is dropped and </s> ends a line.");
  cls.def(
      "ids",
      [](const PyNgram& s, const py::object& line_obj) {
        const std::string line = utf8_arg(line_obj, "line");
        std::vector<std::uint32_t> ids;
        ngram::for_each_token(line, s.model.mode(), 0,
                              [&](std::string_view t) { ids.push_back(s.model.index(t)); });
        return py::array_t<std::int32_t>(ids.size(), reinterpret_cast<const std::int32_t*>(ids.data()));
      },
      py::arg("line"), "Token ids of one line (0 for unknown words), int32 array.");
  cls.def(
      "score",
      [](const PyNgram& s, const py::object& sentence, bool bos, bool eos) {
        return s.model.score_text(utf8_arg(sentence, "sentence"), bos, eos);
      },
      py::arg("sentence"), py::kw_only(), py::arg("bos") = true, py::arg("eos") = true,
      "log10 probability of a sentence, with <s> context (bos) and </s> scored at the end (eos), "
      "as kenlm.Model.score.");
  cls.def(
      "score_batch",
      [](const PyNgram& s, const py::sequence& sentences, bool bos, bool eos, unsigned threads) {
        // Views of the str objects' own UTF-8 buffers (no copies); `keep`
        // holds a reference to each so they outlive the GIL-free scoring.
        const std::size_t n = py::len(sentences);
        std::vector<py::object> keep;
        std::vector<std::string_view> views;
        keep.reserve(n);
        views.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          py::object item = sentences[i];
          if (!PyUnicode_Check(item.ptr()))
            throw std::invalid_argument("score_batch expects a sequence of str, item " + std::to_string(i) +
                                        " is " + std::string(py::str(py::type::of(item).attr("__name__"))));
          Py_ssize_t len = 0;
          const char* data = PyUnicode_AsUTF8AndSize(item.ptr(), &len);
          if (!data) {
            PyErr_Clear();
            throw std::invalid_argument("sentence " + std::to_string(i) +
                                        " is not valid text: it holds a lone surrogate");
          }
          views.emplace_back(data, static_cast<std::size_t>(len));
          keep.push_back(std::move(item));
        }
        std::vector<double> out;
        {
          py::gil_scoped_release release;
          out = s.model.score_batch(views, bos, eos, threads);
        }
        return py::array_t<double>(out.size(), out.data());
      },
      py::arg("sentences"), py::kw_only(), py::arg("bos") = true, py::arg("eos") = true,
      py::arg("threads") = 0, "score() of each sentence (float64 array), in parallel without the GIL.");
  cls.def(
      "perplexity",
      [](const PyNgram& s, const py::object& source, unsigned threads) {
        std::string text = is_path(source) ? std::string() : join_lines(source);
        std::string path = is_path(source) ? existing_file(source) : std::string();
        ngram::PerplexityStats st;
        {
          py::gil_scoped_release release;
          if (!path.empty()) text = read_text_file(path);
          st = s.model.perplexity(text, threads);
        }
        return stats_dict(st);
      },
      py::arg("source"), py::kw_only(), py::arg("threads") = 0,
      R"doc(Scores a text (path or sequence of lines) as KenLM's `query` does: each line
with <s> context and </s>. Returns dict(log10_prob, tokens (words + one </s> per
line), oov, sentences, perplexity (including OOVs),
perplexity_excluding_oov).)doc");
  cls.def(
      "next_logprobs",
      [](PyNgram& s, const py::object& context, bool bos) {
        std::vector<std::uint32_t> ids = to_ids(s, context);
        py::array_t<float> out(s.model.vocab_size());
        float* data = out.mutable_data();
        {
          py::gil_scoped_release release;
          ngram::State st = state_after(s.model, ids, bos);
          s.model.next_logprobs(st, data);
        }
        return out;
      },
      py::arg("context"), py::kw_only(), py::arg("bos") = true,
      R"doc(Natural-log probabilities of every next word (float32[vocab_size]) after the
context (ids or words; with <s> first when bos). <s> gets -inf. Unknown words in
the context are <unk>, which KenLM scores as a unigram context.)doc");
  cls.def(
      "top_k",
      [](PyNgram& s, const py::object& context, std::size_t k, bool bos, bool allow_unk) {
        std::vector<std::uint32_t> ids = to_ids(s, context);
        k = std::min(k, s.model.vocab_size());
        std::vector<std::uint32_t> cand(k);
        std::vector<float> score(k);
        std::size_t n;
        {
          py::gil_scoped_release release;
          const ngram::TopKIndex& ix = s.topk_index();
          ngram::State st = state_after(s.model, ids, bos);
          n = ix.top_k(st, k, allow_unk, cand.data(), score.data());
        }
        py::array_t<std::int32_t> oid(n);
        py::array_t<float> osc(n);
        for (std::size_t i = 0; i < n; ++i) {
          oid.mutable_data()[i] = static_cast<std::int32_t>(cand[i]);
          osc.mutable_data()[i] = score[i] * 2.302585092994046f;
        }
        return py::make_tuple(oid, osc);
      },
      py::arg("context"), py::arg("k"), py::kw_only(), py::arg("bos") = true, py::arg("allow_unk") = false,
      R"doc(The exact k most probable next words: (ids int32, natural-log probs float32),
best first, ties by id; never <s>, <unk> only if allow_unk. Computed by merging
the backoff levels, without the full distribution (the first call builds an
index of the children of each context by probability).)doc");
  cls.def(
      "generate",
      [](PyNgram& s, const py::object& context, std::size_t max_tokens, float temperature, int top_k,
         float top_p, float min_p, float repetition_penalty, float presence_penalty,
         float frequency_penalty, std::uint64_t seed, std::uint64_t stream, std::uint64_t first_step,
         bool bos, bool stop_at_eos, bool allow_unk) {
        std::vector<std::uint32_t> ids = to_ids(s, context);
        ngram::GenerateOptions o;
        o.max_tokens = max_tokens;
        o.params = sampling_params(temperature, top_k, top_p, min_p, repetition_penalty,
                                   presence_penalty, frequency_penalty);
        o.seed = seed;
        o.stream = stream;
        o.first_step = first_step;
        o.bos = bos;
        o.stop_at_eos = stop_at_eos;
        o.allow_unk = allow_unk;
        ngram::GenerateResult out = run_generate(s, ids, o);
        return py::array_t<std::int32_t>(out.tokens.size(),
                                         reinterpret_cast<const std::int32_t*>(out.tokens.data()));
      },
      py::arg("context"), py::arg("max_tokens"), py::kw_only(), py::arg("temperature") = 1.0f,
      py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f,
      py::arg("repetition_penalty") = 1.0f, py::arg("presence_penalty") = 0.0f,
      py::arg("frequency_penalty") = 0.0f, py::arg("seed") = 0, py::arg("stream") = 0,
      py::arg("first_step") = 0, py::arg("bos") = true, py::arg("stop_at_eos") = true, py::arg("allow_unk") = false,
      R"doc(Generates up to max_tokens word ids (int32 array) after the context (ids or
words). Stops at </s> (not returned) when stop_at_eos, else returns </s> and starts
a new sentence. top_k in (0, vocab): samples from the exact top-k candidates
(plus history tokens when a penalty is on); otherwise from the full distribution.
temperature 0 = greedy. Token i is drawn with the counter key (seed, stream,
first_step + i), so generate(ctx + out[:n], m, first_step=n) continues
generate(ctx, n) exactly (for streaming in chunks) when no penalty is on.
Penalties count the tokens this call generates (see generate_chunk for a
history carried over chunks). Draws go through the shared sampler
(aigc_engine.sampling: same semantics and Philox keys as every text generator).)doc");
  cls.def(
      "generate_chunk",
      [](PyNgram& s, const py::object& context, std::size_t count, float temperature, int top_k,
         float top_p, float min_p, float repetition_penalty, float presence_penalty,
         float frequency_penalty, std::uint64_t seed, std::uint64_t stream, std::uint64_t first_step,
         bool bos, bool stop_at_eos, const py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>& history_ids,
         const py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>& history_counts,
         std::size_t min_tokens, const std::vector<std::uint32_t>& ban_ids, int logprobs) {
        std::vector<std::uint32_t> ids = to_ids(s, context);
        if (history_ids.size() != history_counts.size())
          throw std::invalid_argument("history_ids has " + std::to_string(history_ids.size()) +
                                      " entries but history_counts has " +
                                      std::to_string(history_counts.size()));
        if (logprobs > 20) throw std::invalid_argument("logprobs must be at most 20, got " + std::to_string(logprobs));
        ngram::GenerateOptions o;
        o.max_tokens = count;
        o.params = sampling_params(temperature, top_k, top_p, min_p, repetition_penalty,
                                   presence_penalty, frequency_penalty);
        o.seed = seed;
        o.stream = stream;
        o.first_step = first_step;
        o.bos = bos;
        o.stop_at_eos = stop_at_eos;
        o.history_ids = history_ids.data();
        o.history_counts = history_counts.data();
        o.history_len = static_cast<std::size_t>(history_ids.size());
        o.min_tokens = min_tokens;
        o.ban_ids = ban_ids;
        o.logprobs = logprobs;
        ngram::GenerateResult out = run_generate(s, ids, o);
        py::dict d;
        d["tokens"] = py::array_t<std::int32_t>(out.tokens.size(),
                                                reinterpret_cast<const std::int32_t*>(out.tokens.data()));
        d["stopped_at_eos"] = out.stopped_at_eos;
        if (logprobs >= 0) {
          const auto draws = static_cast<py::ssize_t>(out.logprobs.size());
          d["logprobs"] = py::array_t<float>(draws, out.logprobs.data());
          d["top_ids"] = py::array_t<std::int32_t>({draws, static_cast<py::ssize_t>(logprobs)},
                                                   out.top_ids.data());
          d["top_logprobs"] = py::array_t<float>({draws, static_cast<py::ssize_t>(logprobs)},
                                                 out.top_logprobs.data());
        }
        return d;
      },
      py::arg("context"), py::arg("count"), py::kw_only(), py::arg("temperature") = 1.0f,
      py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f,
      py::arg("repetition_penalty") = 1.0f, py::arg("presence_penalty") = 0.0f,
      py::arg("frequency_penalty") = 0.0f, py::arg("seed") = 0, py::arg("stream") = 0,
      py::arg("first_step") = 0, py::arg("bos") = true, py::arg("stop_at_eos") = true,
      py::arg("history_ids") = py::array_t<std::uint32_t>(0),
      py::arg("history_counts") = py::array_t<std::int32_t>(0), py::arg("min_tokens") = 0,
      py::arg("ban_ids") = std::vector<std::uint32_t>{}, py::arg("logprobs") = -1,
      R"doc(One chunk of generation for the engine's decoding loop (as generate, keyed
by first_step). history_ids/history_counts: the distinct tokens generated before
this chunk and their counts (the penalties' history; the context is not
history). ban_ids cannot be drawn while first_step + i < min_tokens. Returns
dict(tokens int32, stopped_at_eos) and, with logprobs >= 0, logprobs (one per
draw, the stopping </s> included), top_ids and top_logprobs (draws x logprobs;
id -1 where fewer tokens were kept), natural-log, from the distribution each
draw used.)doc");
}

}  // namespace aigc::bindings
