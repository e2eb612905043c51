// Bindings of csrc/ngram (registered by module.cpp).
#include "bindings/common.hpp"

namespace aigc::bindings {

void register_ngram(pybind11::module_& m) { (void)m; }

}  // namespace aigc::bindings
