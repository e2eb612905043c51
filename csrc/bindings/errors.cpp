// Error translation. std::invalid_argument -> ValueError and std::out_of_range
// -> IndexError come from pybind11 itself; the core's own types become
// subclasses of aigc_engine.errors.CoreError / ModelFormatError (both AigcError).
#include <pybind11/pybind11.h>

#include "bindings/common.hpp"
#include "core_error.hpp"

namespace py = pybind11;

namespace aigc::bindings {

void register_errors(py::module_& m) {
  py::module_ errors = py::module_::import("aigc_engine.errors");
  // Translators run newest first, so the more derived type is registered last.
  py::register_exception<CoreError>(m, "CoreError", errors.attr("CoreError"));
  py::register_exception<FormatError>(m, "FormatError", errors.attr("ModelFormatError"));
}

}  // namespace aigc::bindings
