// The aigc_engine._cuda module: host glue for the CUDA sampling kernels.
// Statically linked to the CUDA runtime, so it imports on machines without
// CUDA; status() says whether the kernels can run here and why not.
// Pointers arrive as integers (torch tensors' data_ptr()); the torch side
// (aigc_engine/ops.py) owns every buffer and the stream.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_runtime_api.h>

#include "cuda/sampling_kernels.cuh"

namespace py = pybind11;

namespace {

#ifndef AIGC_CUDA_ARCHS
#define AIGC_CUDA_ARCHS "unknown"
#endif

py::tuple status() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    std::string why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error state of this thread
    return py::make_tuple(false, "no usable CUDA device (cudaGetDeviceCount failed with " + why + ")");
  }
  if (count == 0) return py::make_tuple(false, std::string("no CUDA device is visible"));
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  if (major < 8)
    return py::make_tuple(false, "device 0 has compute capability " + std::to_string(major) + "." +
                                     std::to_string(minor) + "; the kernels are built for " +
                                     AIGC_CUDA_ARCHS + " (8.0 or newer)");
  return py::make_tuple(true, std::to_string(count) + " CUDA device(s), device 0 compute capability " +
                                  std::to_string(major) + "." + std::to_string(minor) +
                                  "; kernels built for " + AIGC_CUDA_ARCHS);
}

template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void launch(std::uintptr_t logits, std::int64_t rows, std::int64_t vocab, std::uintptr_t params,
            std::uintptr_t seed, std::uintptr_t stream,
            std::uintptr_t step, std::uintptr_t history, std::int64_t history_len,
            std::uintptr_t workspace, std::uintptr_t status_ptr, std::uintptr_t out,
            std::uintptr_t probs, std::uintptr_t cuda_stream, int device) {
  if (rows < 0 || vocab <= 0)
    throw std::invalid_argument("rows must be >= 0 and vocab >= 1, got " + std::to_string(rows) +
                                " and " + std::to_string(vocab));
  if ((out == 0) == (probs == 0)) throw std::invalid_argument("exactly one of out and probs must be given");
  if (rows > 0x7fffffff) throw std::invalid_argument("too many rows for one launch: " + std::to_string(rows));
  aigc::cuda::LaunchArgs a;
  a.logits = ptr<const float>(logits);
  a.rows = rows;
  a.vocab = vocab;
  a.params = ptr<const aigc::sampling::SamplingParams>(params);
  a.seed = ptr<const std::int64_t>(seed);
  a.stream = ptr<const std::int64_t>(stream);
  a.step = ptr<const std::int64_t>(step);
  a.history = history_len > 0 ? ptr<const std::int64_t>(history) : nullptr;
  a.history_len = history_len;
  a.workspace = ptr<float>(workspace);
  a.status = ptr<std::int32_t>(status_ptr);
  a.out = ptr<std::int64_t>(out);
  a.probs = ptr<float>(probs);
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = cudaSetDevice(device);
    if (err == cudaSuccess) err = aigc::cuda::launch_sampling(a, reinterpret_cast<cudaStream_t>(cuda_stream));
  }
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("aigc CUDA sampling kernel failed to launch: ") +
                             cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "aigc-engine CUDA sampling kernels (optional; see aigc_engine.sampling.cuda_status)";
  m.attr("archs") = AIGC_CUDA_ARCHS;
  m.def("status", &status, "(usable, reason): whether the kernels can run on this machine.");
  m.def("workspace_floats", &aigc::cuda::workspace_floats, py::arg("rows"), py::arg("vocab"));
  m.def("launch", &launch, py::arg("logits"), py::arg("rows"), py::arg("vocab"),
        py::arg("params"), py::arg("seed"), py::arg("stream"), py::arg("step"), py::arg("history"),
        py::arg("history_len"), py::arg("workspace"), py::arg("status"), py::arg("out"),
        py::arg("probs"), py::arg("cuda_stream"), py::arg("device"),
        "Enqueues the sampling kernel (device pointers as ints; params: one packed "
        "sampling::SamplingParams per row) on cuda_stream.");
}
