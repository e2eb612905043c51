#pragma once
// Shared declarations of the binding translation units.
#include <pybind11/pybind11.h>

namespace aigc::bindings {

// Registers the core exception types (aigc_engine._core.CoreError ...).
void register_errors(pybind11::module_& m);
// Defined in ngram.cpp.
void register_ngram(pybind11::module_& m);
// Defined in sampling.cpp.
void register_sampling(pybind11::module_& m);

}  // namespace aigc::bindings
