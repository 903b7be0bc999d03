#pragma once
// Each msascope-cli command lives in its own cmd_<name>.cpp and registers itself
// here at static-initialization time; main.cpp only parses and dispatches.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace msa::cli {

struct Command {
    std::string name;
    std::string description;
    int order = 100;  // position in --help
    // Adds options to `sub`; returns the function that runs the command (exit code).
    std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& command_registry();

struct RegisterCommand {
    explicit RegisterCommand(Command c) { command_registry().push_back(std::move(c)); }
};

}  // namespace msa::cli
