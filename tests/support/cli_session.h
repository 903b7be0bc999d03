#pragma once
// Sessions recorded the way a user records them: the real msascope-cli, run
// as a child process on a small generated model (tiny_config(), F32 GGUF) and
// generated text. For tests of what the CLI stores and the app opens.
#include <string>

namespace msa {

// Path of the built msascope-cli (may not exist in a GUI-less build).
std::string cli_binary();

struct CliResult {
    int code = -1;     // exit status, -1 when it did not exit normally
    std::string out;   // stdout (stderr is discarded)
};
// Runs msascope-cli with `args` (a shell-quoted argument string).
CliResult run_cli(const std::string& args);

// Writes the tiny model as `dir`/tiny.gguf and about `tokens` tokens of varied
// English-like text as `dir`/text.txt; returns
// "--model DIR/tiny.gguf --text DIR/text.txt --tokens N" for `run`.
std::string write_tiny_model_and_text(const std::string& dir, int tokens, unsigned seed = 3);

}  // namespace msa
