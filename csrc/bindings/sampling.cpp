// Bindings of csrc/sampling (registered by module.cpp). Argument conversion
// and checks of shapes here; the work runs with the GIL released and touches
// no Python object. Parameter semantics are documented in aigc_engine/sampling.py.
//
// Per-row parameters arrive packed: a numpy array of SAMPLING_PARAMS_DTYPE
// (the layout of sampling::SamplingParams, registered below), of one entry
// for every row or one per row. Draw keys (seed, stream, step) arrive each as
// an int or an integer array of one value per row, converted here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/common.hpp"
#include "sampling/sampling.hpp"

namespace py = pybind11;

namespace aigc::bindings {
namespace {

using sampling::Batch;
using sampling::SamplingParams;

template <class T>
using Arr = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A bad argument of a call (shape, type, range): aigc_engine.errors.ConfigError.
class ArgumentError : public std::invalid_argument {
 public:
  explicit ArgumentError(const std::string& what) : std::invalid_argument(what) {}
};

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
void check_vector(const Arr<T>& a, py::ssize_t rows, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != rows)
    throw ArgumentError(std::string(name) + " must have shape (" + std::to_string(rows) +
                        ",), got " + shape_str(a));
}

// One of the keys: an int for every row, or an integer array of `rows` values
// in [0, 2**64) (signed arrays are checked, then read as uint64).
struct KeyArg {
  sampling::KeyColumn column;
  py::object keep;  // the array read by column.values
};

[[noreturn]] void bad_key_type(const py::handle& value, const char* name) {
  throw ArgumentError(std::string(name) + " must be an int in [0, 2**64) or an array of them, got " +
                      std::string(py::repr(value)));
}

KeyArg key_arg(const py::handle& value, py::ssize_t rows, const char* name) {
  KeyArg k;
  PyObject* o = value.ptr();
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      PyErr_Clear();
      throw ArgumentError(std::string(name) + " must be in [0, 2**64), got " +
                          std::string(py::str(value)));
    }
    k.column.value = v;
    return k;
  }
  if (PyBool_Check(o)) bad_key_type(value, name);
  py::array arr = py::array::ensure(value);
  if (!arr) {
    PyErr_Clear();
    bad_key_type(value, name);
  }
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u') bad_key_type(value, name);
  const bool scalar = arr.ndim() == 0;
  if (!scalar && (arr.ndim() != 1 || arr.shape(0) != rows))
    throw ArgumentError(std::string(name) + " must be an int or have shape (" +
                        std::to_string(rows) + ",), got shape " + shape_str(arr));
  if (kind == 'u') {
    auto u = Arr<std::uint64_t>::ensure(arr);
    if (!u) throw py::error_already_set();
    if (scalar) {
      k.column.value = *u.data();
    } else {
      k.column.values = u.data();
      k.keep = std::move(u);
    }
    return k;
  }
  auto s = Arr<std::int64_t>::ensure(arr);
  if (!s) throw py::error_already_set();
  const std::int64_t* v = s.data();
  const py::ssize_t len = scalar ? 1 : rows;
  std::int64_t lo = 0, hi = 0;
  for (py::ssize_t r = 0; r < len; ++r) {
    lo = r == 0 || v[r] < lo ? v[r] : lo;
    hi = r == 0 || v[r] > hi ? v[r] : hi;
  }
  if (len > 0 && lo < 0)
    throw ArgumentError(std::string(name) + (scalar ? " must be in [0, 2**64), got " + std::to_string(lo)
                                                    : " values must be in [0, 2**64), got " +
                                                          std::to_string(lo) + ".." + std::to_string(hi)));
  if (scalar) {
    k.column.value = static_cast<std::uint64_t>(v[0]);
  } else {
    k.column.values = reinterpret_cast<const std::uint64_t*>(v);  // checked >= 0
    k.keep = std::move(s);
  }
  return k;
}

// Everything a batch call needs, converted and kept alive while the GIL is released.
struct BatchArgs {
  Arr<float> logits;
  Arr<SamplingParams> params;
  std::optional<Arr<std::int32_t>> history;
  std::optional<Arr<std::int64_t>> offsets;
  Batch batch;

  BatchArgs(Arr<float> logits_, Arr<SamplingParams> params_,
            std::optional<Arr<std::int32_t>> history_, std::optional<Arr<std::int64_t>> offsets_)
      : logits(std::move(logits_)),
        params(std::move(params_)),
        history(std::move(history_)),
        offsets(std::move(offsets_)) {
    if (logits.ndim() != 2)
      throw ArgumentError("logits must be a 2-D array (rows, vocab), got shape " +
                          shape_str(logits));
    const py::ssize_t rows = logits.shape(0);
    if (params.ndim() != 1 || (params.shape(0) != rows && params.shape(0) != 1))
      throw ArgumentError("params must have shape (1,) (every row) or (" + std::to_string(rows) +
                          ",) (one per row), got " + shape_str(params));
    if (history.has_value() != offsets.has_value())
      throw ArgumentError("history and history_offsets must be given together");
    batch.logits = logits.data();
    batch.rows = rows;
    batch.n = logits.shape(1);
    batch.row_stride = logits.shape(1);
    batch.params = params.data();
    batch.params_stride = params.shape(0) == rows ? 1 : 0;
    if (history) {
      if (history->ndim() != 1)
        throw ArgumentError("history must be 1-D (CSR tokens), got shape " + shape_str(*history));
      check_vector(*offsets, rows + 1, "history_offsets");
      const std::int64_t* off = offsets->data();
      if (off[0] != 0 || off[rows] != history->shape(0))
        throw ArgumentError("history_offsets must start at 0 and end at len(history) = " +
                            std::to_string(history->shape(0)) + ", got " + std::to_string(off[0]) +
                            " and " + std::to_string(off[rows]));
      for (py::ssize_t r = 0; r < rows; ++r)
        if (off[r + 1] < off[r])
          throw ArgumentError("history_offsets must be non-decreasing, got " +
                              std::to_string(off[r]) + " then " + std::to_string(off[r + 1]) +
                              " at row " + std::to_string(r));
      batch.history = history->data();
      batch.history_offsets = off;
    }
  }
};

unsigned thread_arg(int threads) {
  if (threads < 0)
    throw ArgumentError("threads must be an int >= 0 (0 = all cores), got " + std::to_string(threads));
  return static_cast<unsigned>(threads);
}

using OptHistory = std::optional<Arr<std::int32_t>>;
using OptOffsets = std::optional<Arr<std::int64_t>>;

}  // namespace

void register_sampling(pybind11::module_& m) {
  PYBIND11_NUMPY_DTYPE(SamplingParams, temperature, top_k, top_p, min_p, repetition_penalty,
                       presence_penalty, frequency_penalty);
  m.attr("SAMPLING_PARAMS_DTYPE") = py::dtype::of<SamplingParams>();
  py::register_exception<ArgumentError>(
      m, "SamplingArgumentError", py::module_::import("aigc_engine.errors").attr("ConfigError"));

  m.def(
      "sample_batch",
      [](Arr<float> logits, Arr<SamplingParams> params, const py::handle& seed,
         const py::handle& stream, const py::handle& step, OptHistory history, OptOffsets offsets,
         int threads, const py::object& out) {
        BatchArgs a(std::move(logits), std::move(params), std::move(history), std::move(offsets));
        const py::ssize_t rows = a.batch.rows;
        const KeyArg seeds = key_arg(seed, rows, "seed");
        const KeyArg streams = key_arg(stream, rows, "stream");
        const KeyArg steps = key_arg(step, rows, "step");
        // `out` is written in place, so it must be exactly the array the caller
        // holds: a conversion (another dtype, a strided view) would write a copy.
        py::array_t<std::int32_t, py::array::c_style> result;
        if (out.is_none()) {
          result = py::array_t<std::int32_t, py::array::c_style>(rows);
        } else {
          if (!py::isinstance<py::array>(out))
            throw ArgumentError("out must be a numpy int32 array, got " +
                                std::string(py::str(py::type::of(out).attr("__name__"))));
          py::array given = py::reinterpret_borrow<py::array>(out);
          if (!given.dtype().is(py::dtype::of<std::int32_t>()))
            throw ArgumentError("out must have dtype int32, got " + std::string(py::str(given.dtype())));
          if (!(given.flags() & py::array::c_style))
            throw ArgumentError("out must be C-contiguous (it is written in place)");
          result = py::reinterpret_borrow<py::array_t<std::int32_t, py::array::c_style>>(given);
        }
        if (result.ndim() != 1 || result.shape(0) != rows)
          throw ArgumentError("out must have shape (" + std::to_string(rows) + ",), got " +
                              shape_str(result));
        if (!result.writeable()) throw ArgumentError("out must be writeable");
        const unsigned nthreads = thread_arg(threads);
        const sampling::BatchKeys keys{seeds.column, streams.column, steps.column};
        std::int32_t* dst = result.mutable_data();
        {
          py::gil_scoped_release release;
          sampling::sample_batch(a.batch, keys, dst, nthreads);
        }
        return result;
      },
      py::arg("logits"), py::arg("params"), py::arg("seed"), py::arg("stream"), py::arg("step"),
      py::arg("history") = py::none(), py::arg("history_offsets") = py::none(),
      py::arg("threads") = 0, py::arg("out") = py::none(),
      "Draws one token per row (low level; see aigc_engine.sampling.sample). params: "
      "SAMPLING_PARAMS_DTYPE, shape (1,) or (rows,); seed, stream, step: ints or (rows,) integer "
      "arrays in [0, 2**64).");

  m.def(
      "filter_batch",
      [](Arr<float> logits, Arr<SamplingParams> params, OptHistory history, OptOffsets offsets,
         int threads, bool want_probs, bool want_kept) {
        BatchArgs a(std::move(logits), std::move(params), std::move(history), std::move(offsets));
        const py::ssize_t rows = a.batch.rows, n = a.batch.n;
        py::object probs = py::none(), kept = py::none();
        float* pp = nullptr;
        std::uint8_t* kp = nullptr;
        if (want_probs) {
          py::array_t<float> arr({rows, n});
          pp = arr.mutable_data();
          probs = arr;
        }
        if (want_kept) {
          py::array_t<bool> arr({rows, n});
          kp = reinterpret_cast<std::uint8_t*>(arr.mutable_data());
          kept = arr;
        }
        const unsigned nthreads = thread_arg(threads);
        {
          py::gil_scoped_release release;
          sampling::filter_batch(a.batch, pp, kp, nthreads);
        }
        return py::make_tuple(probs, kept);
      },
      py::arg("logits"), py::arg("params"), py::arg("history") = py::none(),
      py::arg("history_offsets") = py::none(), py::arg("threads") = 0,
      py::arg("want_probs") = true, py::arg("want_kept") = true,
      "The filtered distribution per row: (probs float32 | None, kept bool | None).");

  m.def(
      "penalize_counts",
      [](py::array_t<float, py::array::c_style> row, Arr<std::int32_t> ids,
         py::array_t<std::int32_t, py::array::c_style> counts, float repetition, float presence,
         float frequency) {
        if (row.ndim() != 1 || !row.writeable())
          throw std::invalid_argument("row must be a writeable 1-D float32 array");
        if (counts.ndim() != 1 || counts.shape(0) != row.shape(0))
          throw std::invalid_argument("counts must have one entry per token of the row");
        float* r = row.mutable_data();
        const py::ssize_t n = row.shape(0), len = ids.size();
        const std::int32_t* id = ids.data();
        const std::int32_t* c = counts.data();
        sampling::penalize_counts(r, n, id, len, c, repetition, presence, frequency);
      },
      py::arg("row").noconvert(), py::arg("ids"), py::arg("counts").noconvert(),
      py::arg("repetition_penalty"), py::arg("presence_penalty"), py::arg("frequency_penalty"),
      "In place: the penalties of the distinct `ids` with `counts[id]` occurrences (the decoding "
      "loop's incremental counts) applied to one float32 row.");
  m.def(
      "penalize_batch",
      [](Arr<float> logits, Arr<SamplingParams> params, OptHistory history, OptOffsets offsets) {
        BatchArgs a(std::move(logits), std::move(params), std::move(history), std::move(offsets));
        const py::ssize_t rows = a.batch.rows, n = a.batch.n;
        py::array_t<float> out({rows, n});
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          const Batch& b = a.batch;
          for (py::ssize_t r = 0; r < rows; ++r) {
            const std::int32_t* h = nullptr;
            std::int64_t hl = 0;
            if (b.history_offsets) {
              h = b.history + b.history_offsets[r];
              hl = b.history_offsets[r + 1] - b.history_offsets[r];
            }
            try {
              sampling::penalize_row(b.logits + r * n, n, b.row_params(r), h, hl, dst + r * n);
            } catch (const std::invalid_argument& e) {
              throw std::invalid_argument("row " + std::to_string(r) + ": " + e.what());
            }
          }
        }
        return out;
      },
      py::arg("logits"), py::arg("params"), py::arg("history") = py::none(),
      py::arg("history_offsets") = py::none(), "The logits after the penalties only.");

  m.def(
      "draw_uniform",
      [](std::uint64_t seed, std::uint64_t stream, std::uint64_t step) {
        return sampling::draw_uniform_of(sampling::DrawKey{seed, stream, step});
      },
      py::arg("seed"), py::arg("stream"), py::arg("step"),
      "The uniform number in [0, 1) the draw keyed by (seed, stream, step) uses.");

  m.def(
      "philox4x32_10",
      [](std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key) {
        std::array<std::uint32_t, 4> out{};
        sampling::philox4x32_10_block(counter.data(), key.data(), out.data());
        return out;
      },
      py::arg("counter"), py::arg("key"), "One Philox4x32-10 block (known-answer tests).");

  m.def(
      "sampling_simd", []() { return std::string(sampling::simd_level()); },
      "The instruction set of the sampler's CPU kernels in use (avx512, avx2, sse2 or generic); "
      "set AIGC_SAMPLING_SIMD before the first draw to pick a narrower one.");
  m.def("sampling_simd_levels", &sampling::simd_levels,
        "Every instruction set the sampler was built for, best first, as (name, runs here).");

  m.def("scratch_bytes", &sampling::scratch_bytes, py::arg("n"),
        "Bytes of scratch space sample_row needs for a row of n scores.");
}

}  // namespace aigc::bindings
