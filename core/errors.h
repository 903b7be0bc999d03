#pragma once
// Two kinds of failure, because the CLI contract maps them to exit codes:
// InputError = the user gave us something bad (file, flag, value)  -> exit 2
// anything else derived from std::exception                          -> exit 1
#include <stdexcept>
#include <string>

namespace msa {

struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace msa
