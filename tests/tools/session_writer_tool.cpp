// Writes one long run into a session file stage by stage, pausing between
// layers, so tests can SIGKILL it at any moment or read the file meanwhile.
//   session_writer_tool PATH [--layers N] [--tokens N] [--kernels K]
//                            [--pause-ms M] [--seed S] [--full-every F]
// Prints "run ID" once the run is begun and "done" when it is finished.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "core/errors.h"
#include "sessions/random_run.h"
#include "sessions/session.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PATH [--layers N] [--tokens N] [--kernels K] [--pause-ms M] [--seed S] [--full-every F]\n",
                     argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    msa::sessions::RandomRunShape shape;
    shape.n_layers = 30;
    shape.n_tokens = 1024;
    shape.kernels_per_layer = 40;
    int pause_ms = 2;
    uint64_t seed = 1;
    int full_every = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const long value = std::strtol(argv[i + 1], nullptr, 10);
        if (flag == "--layers") shape.n_layers = int(value);
        else if (flag == "--tokens") shape.n_tokens = int(value);
        else if (flag == "--kernels") shape.kernels_per_layer = int(value);
        else if (flag == "--pause-ms") pause_ms = int(value);
        else if (flag == "--seed") seed = uint64_t(value);
        else if (flag == "--full-every") full_every = int(value);
        else {
            std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    try {
        using namespace msa::sessions;
        const msa::RunResult identity = random_run(RandomRunShape{shape.n_tokens, 0, shape.n_heads, shape.n_kv_heads,
                                                                  shape.block, shape.k, shape.sink, 0, false, {}},
                                                   seed);
        Writer writer(path);
        const int64_t run = writer.begin_run(identity, "run");
        std::printf("run %lld\n", static_cast<long long>(run));
        std::fflush(stdout);
        uint64_t clock_ns = 1000000000ull;
        for (int l = 0; l < shape.n_layers; ++l) {
            msa::LayerResult layer;
            layer.layer = l;
            layer.recall_mean = 0.9;
            layer.recall_p5 = 0.5;
            layer.recall_p50 = 0.95;
            layer.output_rel_error = 0.01 * l;
            layer.group_recall_mean.assign(shape.n_kv_heads, 0.9);
            layer.head_recall_mean.assign(shape.n_heads, 0.9);
            layer.head_rel_error.assign(shape.n_heads, 0.01);
            writer.write_layers(run, {layer});
            writer.write_capture(run, random_capture(shape, l, full_every > 0 && l % full_every == 0, seed));
            auto kernels = random_kernels(shape, l, clock_ns, seed);
            if (!kernels.empty()) clock_ns = kernels.back().end_ns;
            writer.write_kernels(run, kernels);
            if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        }
        msa::RunResult summary = identity;
        summary.perplexity_dense = 11.5;
        summary.perplexity_msa = 12.25;
        summary.needles = {{"key", "value", 10, 12, shape.n_tokens - 1}};
        summary.warnings = {"a warning"};
        writer.write_timings(run, {{"forward_dense", 10}, {"forward_msa", 8}});
        writer.write_summary(run, summary);
        writer.write_sweep_rows(run, nlohmann::json::array({{{"k", 8}, {"recall_mean", 0.8}}, {{"k", 16}, {"recall_mean", 0.9}}}));
        writer.finish_run(run);
        std::printf("done\n");
        std::fflush(stdout);
        return 0;
    } catch (const msa::InputError& e) {
        std::fprintf(stderr, "session_writer_tool: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "session_writer_tool: error: %s\n", e.what());
        return 1;
    }
}
