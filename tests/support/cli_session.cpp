#include "tests/support/cli_session.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <vector>

#include "tests/support/tiny_model.h"

namespace msa {

std::string cli_binary() { return std::string(MSASCOPE_BINARY_DIR) + "/app/msascope-cli"; }

CliResult run_cli(const std::string& args) {
    CliResult r;
    const std::string command = cli_binary() + " " + args + " 2>/dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return r;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.out.append(buffer, n);
    const int status = ::pclose(pipe);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::string write_tiny_model_and_text(const std::string& dir, int tokens, unsigned seed) {
    const std::string model = dir + "/tiny.gguf", text = dir + "/text.txt";
    write_gguf(make_random_model(tiny_config(), seed), model);
    // Random words: the byte-level vocabulary's merges leave roughly one token
    // per 1-3 bytes, so 4 bytes per wanted token always gives enough.
    static const std::vector<std::string> words = {"the", "block", "query", "key", "sparse", "attention", "model",
                                                   "selects", "of", "a", "mass", "dense", "layer", "and", "head"};
    std::mt19937 rng(seed);
    std::ofstream out(text, std::ios::binary);
    for (int i = 0; i < tokens; ++i) out << words[rng() % words.size()] << (i % 12 == 11 ? ".\n" : " ");
    return "--model " + model + " --text " + text + " --tokens " + std::to_string(tokens);
}

}  // namespace msa
