// Bindings of csrc/sampling (registered by module.cpp).
#include "bindings/common.hpp"

namespace aigc::bindings {

void register_sampling(pybind11::module_& m) { (void)m; }

}  // namespace aigc::bindings
