// The aigc_engine._core module: each algorithm family registers its bindings here.
#include <pybind11/pybind11.h>

#include "bindings/common.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "aigc-engine compiled core: n-gram language models and token sampling";
#ifdef AIGC_VERSION
  m.attr("__version__") = AIGC_VERSION;
#endif
  aigc::bindings::register_errors(m);
  aigc::bindings::register_ngram(m);
  aigc::bindings::register_sampling(m);
}
