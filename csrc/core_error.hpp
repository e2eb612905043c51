#pragma once
// The core's own error type: translated to aigc_engine.errors.CoreError (an AigcError).
#include <stdexcept>
#include <string>

namespace aigc {

// Raised for well-formed calls that fail on the data (a model file of another
// version, a corpus that cannot be estimated). Invalid arguments use
// std::invalid_argument and indices out of range std::out_of_range.
class CoreError : public std::runtime_error {
 public:
  explicit CoreError(const std::string& what) : std::runtime_error(what) {}
};

// A file that cannot be parsed or has the wrong format or version.
class FormatError : public CoreError {
 public:
  explicit FormatError(const std::string& what) : CoreError(what) {}
};

}  // namespace aigc
