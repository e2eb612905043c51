// Bindings of csrc/sampling (registered by module.cpp). Argument conversion
// and checks of shapes here; the work runs with the GIL released and touches
// no Python object. Parameter semantics are documented in aigc_engine/sampling.py.
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

template <class T>
using Arr = py::array_t<T, py::array::c_style | py::array::forcecast>;

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
void check_vector(const Arr<T>& a, py::ssize_t rows, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != rows)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) +
                                ",), got " + shape_str(a));
}

// Everything a batch call needs, converted and kept alive while the GIL is released.
struct BatchArgs {
  Arr<float> logits;
  Arr<float> temperature, top_p, min_p, repetition, presence, frequency;
  Arr<std::int32_t> top_k;
  std::optional<Arr<std::int32_t>> history;
  std::optional<Arr<std::int64_t>> offsets;
  Batch batch;

  BatchArgs(Arr<float> logits_, Arr<float> temperature_, Arr<std::int32_t> top_k_, Arr<float> top_p_,
            Arr<float> min_p_, Arr<float> repetition_, Arr<float> presence_, Arr<float> frequency_,
            std::optional<Arr<std::int32_t>> history_, std::optional<Arr<std::int64_t>> offsets_)
      : logits(std::move(logits_)),
        temperature(std::move(temperature_)),
        top_p(std::move(top_p_)),
        min_p(std::move(min_p_)),
        repetition(std::move(repetition_)),
        presence(std::move(presence_)),
        frequency(std::move(frequency_)),
        top_k(std::move(top_k_)),
        history(std::move(history_)),
        offsets(std::move(offsets_)) {
    if (logits.ndim() != 2)
      throw std::invalid_argument("logits must be a 2-D array (rows, vocab), got shape " +
                                  shape_str(logits));
    const py::ssize_t rows = logits.shape(0);
    check_vector(temperature, rows, "temperature");
    check_vector(top_k, rows, "top_k");
    check_vector(top_p, rows, "top_p");
    check_vector(min_p, rows, "min_p");
    check_vector(repetition, rows, "repetition_penalty");
    check_vector(presence, rows, "presence_penalty");
    check_vector(frequency, rows, "frequency_penalty");
    if (history.has_value() != offsets.has_value())
      throw std::invalid_argument("history and history_offsets must be given together");
    batch.logits = logits.data();
    batch.rows = rows;
    batch.n = logits.shape(1);
    batch.row_stride = logits.shape(1);
    batch.params.temperature = temperature.data();
    batch.params.top_k = top_k.data();
    batch.params.top_p = top_p.data();
    batch.params.min_p = min_p.data();
    batch.params.repetition_penalty = repetition.data();
    batch.params.presence_penalty = presence.data();
    batch.params.frequency_penalty = frequency.data();
    if (history) {
      if (history->ndim() != 1)
        throw std::invalid_argument("history must be 1-D (CSR tokens), got shape " + shape_str(*history));
      check_vector(*offsets, rows + 1, "history_offsets");
      const std::int64_t* off = offsets->data();
      if (off[0] != 0 || off[rows] != history->shape(0))
        throw std::invalid_argument("history_offsets must start at 0 and end at len(history) = " +
                                    std::to_string(history->shape(0)) + ", got " +
                                    std::to_string(off[0]) + " and " + std::to_string(off[rows]));
      for (py::ssize_t r = 0; r < rows; ++r)
        if (off[r + 1] < off[r])
          throw std::invalid_argument("history_offsets must be non-decreasing, got " +
                                      std::to_string(off[r]) + " then " + std::to_string(off[r + 1]) +
                                      " at row " + std::to_string(r));
      batch.history = history->data();
      batch.history_offsets = off;
    }
  }
};

unsigned thread_arg(int threads) {
  if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  return static_cast<unsigned>(threads);
}

}  // namespace

void register_sampling(pybind11::module_& m) {
  m.def(
      "sample_batch",
      [](Arr<float> logits, Arr<float> temperature, Arr<std::int32_t> top_k, Arr<float> top_p,
         Arr<float> min_p, Arr<float> repetition, Arr<float> presence, Arr<float> frequency,
         Arr<std::uint64_t> seeds, Arr<std::uint64_t> streams, Arr<std::uint64_t> steps,
         std::optional<Arr<std::int32_t>> history, std::optional<Arr<std::int64_t>> offsets,
         int threads, const py::object& out) {
        BatchArgs a(std::move(logits), std::move(temperature), std::move(top_k), std::move(top_p),
                    std::move(min_p), std::move(repetition), std::move(presence),
                    std::move(frequency), std::move(history), std::move(offsets));
        const py::ssize_t rows = a.batch.rows;
        check_vector(seeds, rows, "seeds");
        check_vector(streams, rows, "streams");
        check_vector(steps, rows, "steps");
        // `out` is written in place, so it must be exactly the array the caller
        // holds: a conversion (another dtype, a strided view) would write a copy.
        py::array_t<std::int32_t, py::array::c_style> result;
        if (out.is_none()) {
          result = py::array_t<std::int32_t, py::array::c_style>(rows);
        } else {
          if (!py::isinstance<py::array>(out))
            throw std::invalid_argument("out must be a numpy int32 array, got " +
                                        std::string(py::str(py::type::of(out).attr("__name__"))));
          py::array given = py::reinterpret_borrow<py::array>(out);
          if (!given.dtype().is(py::dtype::of<std::int32_t>()))
            throw std::invalid_argument("out must have dtype int32, got " +
                                        std::string(py::str(given.dtype())));
          if (!(given.flags() & py::array::c_style))
            throw std::invalid_argument("out must be C-contiguous (it is written in place)");
          result = py::reinterpret_borrow<py::array_t<std::int32_t, py::array::c_style>>(given);
        }
        if (result.ndim() != 1 || result.shape(0) != rows)
          throw std::invalid_argument("out must have shape (" + std::to_string(rows) + ",), got " +
                                      shape_str(result));
        if (!result.writeable()) throw std::invalid_argument("out must be writeable");
        const unsigned nthreads = thread_arg(threads);
        std::int32_t* dst = result.mutable_data();
        const std::uint64_t *sd = seeds.data(), *st = streams.data(), *sp = steps.data();
        {
          py::gil_scoped_release release;
          sampling::sample_batch(a.batch, sd, st, sp, dst, nthreads);
        }
        return result;
      },
      py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
      py::arg("min_p"), py::arg("repetition_penalty"), py::arg("presence_penalty"),
      py::arg("frequency_penalty"), py::arg("seeds"), py::arg("streams"), py::arg("steps"),
      py::arg("history") = py::none(), py::arg("history_offsets") = py::none(),
      py::arg("threads") = 0, py::arg("out") = py::none(),
      "Draws one token per row (low level; see aigc_engine.sampling.sample).");

  m.def(
      "filter_batch",
      [](Arr<float> logits, Arr<float> temperature, Arr<std::int32_t> top_k, Arr<float> top_p,
         Arr<float> min_p, Arr<float> repetition, Arr<float> presence, Arr<float> frequency,
         std::optional<Arr<std::int32_t>> history, std::optional<Arr<std::int64_t>> offsets,
         int threads, bool want_probs, bool want_kept) {
        BatchArgs a(std::move(logits), std::move(temperature), std::move(top_k), std::move(top_p),
                    std::move(min_p), std::move(repetition), std::move(presence),
                    std::move(frequency), std::move(history), std::move(offsets));
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
      py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
      py::arg("min_p"), py::arg("repetition_penalty"), py::arg("presence_penalty"),
      py::arg("frequency_penalty"), py::arg("history") = py::none(),
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
      [](Arr<float> logits, Arr<float> temperature, Arr<std::int32_t> top_k, Arr<float> top_p,
         Arr<float> min_p, Arr<float> repetition, Arr<float> presence, Arr<float> frequency,
         std::optional<Arr<std::int32_t>> history, std::optional<Arr<std::int64_t>> offsets) {
        BatchArgs a(std::move(logits), std::move(temperature), std::move(top_k), std::move(top_p),
                    std::move(min_p), std::move(repetition), std::move(presence),
                    std::move(frequency), std::move(history), std::move(offsets));
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
              sampling::penalize_row(b.logits + r * n, n, b.params.row(r), h, hl, dst + r * n);
            } catch (const std::invalid_argument& e) {
              throw std::invalid_argument("row " + std::to_string(r) + ": " + e.what());
            }
          }
        }
        return out;
      },
      py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
      py::arg("min_p"), py::arg("repetition_penalty"), py::arg("presence_penalty"),
      py::arg("frequency_penalty"), py::arg("history") = py::none(),
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
