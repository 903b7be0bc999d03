// msascope-cli: headless front end. Exit codes: 0 ok, 1 runtime failure,
// 2 bad usage or bad input (one line on stderr).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>

#include "app/cli/command.h"
#include "core/errors.h"

namespace msa::cli {
std::vector<Command>& command_registry() {
    static std::vector<Command> registry;
    return registry;
}
}  // namespace msa::cli

int main(int argc, char** argv) {
    using namespace msa::cli;
    CLI::App app{"msascope-cli: see which key blocks MiniMax Sparse Attention selects, what it costs and what it loses"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "msascope 0.1");
    auto& registry = command_registry();
    std::sort(registry.begin(), registry.end(), [](const Command& a, const Command& b) { return a.order < b.order; });
    std::function<int()> to_run;
    for (auto& command : registry) {
        CLI::App* sub = app.add_subcommand(command.name, command.description);
        auto run = command.setup(*sub);
        sub->callback([run, &to_run] { to_run = run; });
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "msascope-cli: %s (see --help)\n", e.what());
        return 2;
    }
    try {
        return to_run ? to_run() : 2;
    } catch (const msa::InputError& e) {
        std::fprintf(stderr, "msascope-cli: %s\n", e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "msascope-cli: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "msascope-cli: error: %s\n", e.what());
        return 1;
    }
}
