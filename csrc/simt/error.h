// The one exception type the emulator throws: deadlocks, misuse of a warp collective, bad launch
// configurations and bad settings all end up here, with a message that says what went wrong.
#pragma once

#include <stdexcept>

namespace simt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace simt
