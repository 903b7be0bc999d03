// msascope-cli bench: dense vs MSA attention kernels on the GPU, per context
// length, for the MiniMax-M3 attention shape or a model's shape, with PyTorch
// SDPA (flash, dense causal) and FlexAttention (our selection as a block mask)
// as peers through tests/bench/peers_torch.py when python3 + torch are there.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "core/errors.h"
#include "core/flops.h"
#include "core/model.h"
#include "sessions/bench_run.h"
#include "sessions/session.h"
#ifdef MSASCOPE_HAVE_CUDA
#include "kernels/cuda_attention.h"
#endif

namespace msa::cli {
namespace {

struct BenchArgs {
    std::string backend = "cuda";
    std::string preset;
    std::string model;
    std::string context;
    int k = 16;
    int block = 128;
    bool decode = false;
    std::string session;
    std::string from_json;
    bool json = false;
    int reps = 3;
    bool peers = true;
    bool flex = true;
    bool profile = false;
    long long max_dense = 1LL << 20;
    bool sdpa_always = false;  // the peer's dense time even where ours is skipped
    std::string peers_script;
    std::string python = "python3";
};

#ifdef MSASCOPE_HAVE_CUDA
std::string find_peers_script(const std::string& flag) {
    namespace fs = std::filesystem;
    if (!flag.empty()) return flag;
    const fs::path rel = fs::path("tests") / "bench" / "peers_torch.py";
    std::vector<fs::path> roots = {fs::current_path()};
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) roots.push_back(p);
    for (const auto& r : roots)
        if (fs::exists(r / rel)) return (r / rel).string();
    return "";
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs the peers script and parses the last JSON line it prints; {"error": ...} on failure.
nlohmann::json run_peers(const BenchArgs& a, const std::string& script, const msa::cuda::BenchShape& shape,
                         const std::string& selection, int slots) {
    std::ostringstream cmd;
    cmd << shell_quote(a.python) << " " << shell_quote(script) << " --context " << shape.n_tokens << " --heads "
        << shape.n_heads << " --kv-heads " << shape.n_kv_heads << " --dim " << shape.head_dim << " --block "
        << shape.config.block << " --k " << shape.config.k << " --reps " << a.reps << " --slots " << slots;
    if (!selection.empty() && a.flex) cmd << " --selection " << shell_quote(selection);
    if (a.decode) cmd << " --decode";
    if (shape.n_tokens > a.max_dense && !a.sdpa_always) cmd << " --no-dense";
    cmd << " 2>&1";
    FILE* f = popen(cmd.str().c_str(), "r");
    if (!f) return {{"error", "cannot start " + a.python}};
    std::string out, last_json;
    char buf[4096];
    while (fgets(buf, sizeof buf, f)) {
        std::string line = buf;
        out += line;
        if (!line.empty() && line[0] == '{') last_json = line;
    }
    int rc = pclose(f);
    if (!last_json.empty()) {
        try {
            return nlohmann::json::parse(last_json);
        } catch (...) {
        }
    }
    std::string tail = out.size() > 400 ? out.substr(out.size() - 400) : out;
    return {{"error", "peers script failed (exit " + std::to_string(rc) + "): " + tail}};
}

double json_num(const nlohmann::json& j, const char* key) {
    return (j.contains(key) && j[key].is_number()) ? j[key].get<double>() : NAN;
}
#endif

// bench --from-json FILE --session S.db: a bench recorded elsewhere (a GPU
// server's `bench --json`) into a session, so the app can show it.
int import_bench(const BenchArgs& a) {
    if (a.session.empty()) throw InputError("--from-json needs --session FILE (the session to add the bench run to)");
    if (!a.preset.empty() || !a.model.empty() || !a.context.empty())
        throw InputError("--from-json takes the shape and contexts from the file: drop --preset, --model and --context");
    std::ifstream in(a.from_json);
    if (!in) throw InputError(a.from_json + ": cannot open the bench JSON");
    nlohmann::json bench = nlohmann::json::parse(in, nullptr, false);
    if (bench.is_discarded()) throw InputError(a.from_json + ": not JSON");
    sessions::Writer writer(a.session);
    int64_t run;
    try {
        run = sessions::write_bench_run(writer, bench, a.from_json);
    } catch (const InputError& e) {
        throw InputError(a.from_json + ": " + e.what());
    }
    const size_t rows = bench["rows"].size(), decode = bench.value("decode_rows", nlohmann::json::array()).size(),
                 kernels = bench.value("kernels", nlohmann::json::array()).size();
    if (a.json) {
        print_json({{"source", a.from_json},
                    {"device", bench.value("device", "")},
                    {"rows", rows},
                    {"decode_rows", decode},
                    {"kernels", kernels},
                    {"session", a.session},
                    {"run_id", run}});
        return 0;
    }
    std::cout << "imported " << a.from_json << " (" << bench.value("device", "unknown device") << ": " << rows
              << " prefill rows, " << decode << " decode rows, " << kernels << " kernel records)\nsaved to " << a.session
              << " as run " << run << "\n";
    return 0;
}

int run_bench(const BenchArgs& a) {
    if (!a.from_json.empty()) return import_bench(a);
    if (a.context.empty()) throw InputError("give --context LIST (e.g. 8K,32K,128K), or --from-json FILE");
    if (a.backend != "cuda") throw InputError("bench runs the CUDA kernels: --backend cuda");
    if (a.preset.empty() == a.model.empty()) throw InputError("give exactly one of --preset msa-m3 or --model PATH");
    if (a.k < 1 || a.block < 1 || a.reps < 1) throw InputError("--k, --block and --reps must be at least 1");
    AttentionFlopsShape fshape;
#ifdef MSASCOPE_HAVE_CUDA
    msa::cuda::BenchShape shape;
#endif
    if (!a.preset.empty()) {
        if (a.preset != "msa-m3") throw InputError("unknown preset '" + a.preset + "' (known: msa-m3)");
        fshape = msa_m3_shape();
#ifdef MSASCOPE_HAVE_CUDA
        shape.index_key_heads = 1;  // MiniMax: one shared index key head
#endif
    } else {
        ModelConfig c = load_model_config(a.model);
        fshape.name = a.model;
        fshape.n_heads = c.n_heads;
        fshape.n_kv_heads = c.n_kv_heads;
        fshape.head_dim = c.head_dim;
        fshape.index_heads = c.n_kv_heads;  // training-free index: one head per group, key head per group
        fshape.index_dim = c.head_dim;
#ifdef MSASCOPE_HAVE_CUDA
        shape.index_key_heads = c.n_kv_heads;
#endif
    }
    std::vector<long long> contexts = parse_size_list(a.context);
#ifndef MSASCOPE_HAVE_CUDA
    (void)contexts;
    std::fprintf(stderr, "msascope-cli: bench needs a CUDA build (this one was built without CUDA)\n");
    return 2;
#else
    std::string why;
    if (!msa::cuda::cuda_available(&why)) {
        std::fprintf(stderr, "msascope-cli: no GPU: %s\n", why.c_str());
        return 2;
    }
    msa::cuda::DeviceInfo dev = msa::cuda::device_info();
    shape.n_heads = fshape.n_heads;
    shape.n_kv_heads = fshape.n_kv_heads;
    shape.head_dim = fshape.head_dim;
    shape.index_dim = fshape.index_dim;
    shape.config.k = a.k;
    shape.config.block = a.block;
    const std::string script = a.peers ? find_peers_script(a.peers_script) : "";
    if (a.peers && script.empty()) std::fprintf(stderr, "bench: peers_torch.py not found; peers skipped\n");
    const std::string device = dev.name + " (sm_" + std::to_string(dev.compute_major) + std::to_string(dev.compute_minor) + ")";
    const nlohmann::json shape_json = {{"name", fshape.name},
                                       {"n_heads", fshape.n_heads},
                                       {"n_kv_heads", fshape.n_kv_heads},
                                       {"head_dim", fshape.head_dim},
                                       {"index_heads", fshape.index_heads},
                                       {"index_dim", fshape.index_dim},
                                       {"index_key_heads", shape.index_key_heads}};
    // --session: the run is begun (incomplete) now and each context commits
    // its rows and kernels as it ends, so a killed bench keeps what it timed.
    std::unique_ptr<sessions::Writer> writer;
    std::unique_ptr<sessions::BenchRecorder> recorder;
    if (!a.session.empty()) {
        writer = std::make_unique<sessions::Writer>(a.session);
        nlohmann::json header = {{"device", device}, {"shape", shape_json}, {"k", a.k}, {"block", a.block},
                                 {"reps", a.reps}, {"contexts", contexts}};
        if (!a.model.empty()) header["model"] = a.model;
        recorder = std::make_unique<sessions::BenchRecorder>(*writer, header);
    }

    nlohmann::json rows = nlohmann::json::array(), decode_rows = nlohmann::json::array();
    nlohmann::json kernels = nlohmann::json::array(), warnings = nlohmann::json::array(), peer_info;
    Table table({"context", "dense ms", "sparse ms", "index ms", "main ms", "SDPA ms", "Flex ms", "speedup",
                 "FLOPs ratio", "sparse TFLOP/s"});
    Table dtable({"context", "dense ms", "sparse ms", "index ms", "SDPA ms", "speedup"});
    for (long long n : contexts) {
        if (n < 1 || n > (1LL << 30)) throw InputError("context " + std::to_string(n) + " out of range");
        shape.n_tokens = static_cast<int>(n);
        std::fprintf(stderr, "bench: context %lld ...\n", n);
        double dense_ms = NAN, index_ms, main_ms, dd_ms = NAN, di_ms = NAN, ds_ms = NAN, dscore_ms = NAN;
        double step_sparse_ms = NAN, step_dense_ms = NAN;
        int slots = 0;
        std::string sel_path;
        nlohmann::json context_kernels = nlohmann::json::array();
        {
            msa::cuda::AttentionBench bench(shape, 42);
            slots = bench.slots();
            index_ms = bench.time_index(a.reps);
            main_ms = bench.time_sparse(a.reps);
            if (n <= a.max_dense) dense_ms = bench.time_dense(std::max(1, n >= (1 << 17) ? 1 : a.reps));
            if (a.decode) {
                dd_ms = bench.time_dense_decode(std::max(a.reps, 10));
                di_ms = bench.time_index_decode(std::max(a.reps, 10));
                ds_ms = bench.time_sparse_decode(std::max(a.reps, 10));
                dscore_ms = bench.time_index_decode_scores(std::max(a.reps, 10));
                step_sparse_ms = bench.time_decode_step(std::max(a.reps, 10), true);
                step_dense_ms = bench.time_decode_step(std::max(a.reps, 10), false);
            }
            if (a.profile) {
                std::string warn;
                for (KernelRecord r : bench.profile(true, &warn, n <= a.max_dense, a.decode)) {
                    r.context = n;
                    context_kernels.push_back(sessions::kernel_json(r));
                    kernels.push_back(context_kernels.back());
                }
                if (!warn.empty()) warnings.push_back(warn);
            }
            if (!script.empty() && a.flex) {
                sel_path = (std::filesystem::temp_directory_path() /
                            ("msascope_sel_" + std::to_string(getpid()) + "_" + std::to_string(n) + ".i32"))
                               .string();
                bench.save_selection(sel_path);
            }
        }  // device memory released before the peers run
        nlohmann::json peers;
        if (!script.empty()) {
            peers = run_peers(a, script, shape, sel_path, slots);
            if (!sel_path.empty()) std::filesystem::remove(sel_path);
            if (peers.contains("error")) warnings.push_back("peers at " + std::to_string(n) + ": " + peers["error"].get<std::string>());
            if (peers.contains("torch")) peer_info = {{"torch", peers["torch"]}, {"device", peers.value("device", "")}};
        }
        const double sdpa = json_num(peers, "sdpa_ms"), flex = json_num(peers, "flex_ms");
        const double sparse_ms = index_ms + main_ms;
        const double work = index_flops(static_cast<int>(n), fshape.index_heads, fshape.index_dim) +
                            sparse_attention_flops(static_cast<int>(n), fshape.n_heads, fshape.head_dim, a.k, a.block);
        const double ratio = flops_ratio(fshape, static_cast<double>(n), a.k, a.block);
        const double tflops = work / (sparse_ms * 1e9);
        const double dense_tflops = dense_attention_flops(static_cast<int>(n), fshape.n_heads, fshape.head_dim) / (dense_ms * 1e9);
        const double speedup = sdpa / sparse_ms;
        rows.push_back({{"context", n},
                        {"dense_ms", number_or_null(dense_ms)},
                        {"sparse_ms", sparse_ms},
                        {"index_ms", index_ms},
                        {"main_ms", main_ms},
                        {"speedup", number_or_null(speedup)},
                        {"speedup_vs_ours_dense", number_or_null(dense_ms / sparse_ms)},
                        {"flops_ratio", ratio},
                        {"sparse_tflops", tflops},
                        {"dense_tflops", number_or_null(dense_tflops)},
                        {"sdpa_ms", number_or_null(sdpa)},
                        {"flex_ms", number_or_null(flex)},
                        {"dense_vs_sdpa", number_or_null(dense_ms / sdpa)}});
        table.add({std::to_string(n), fixed(dense_ms, 3), fixed(sparse_ms, 3), fixed(index_ms, 3), fixed(main_ms, 3),
                   fixed(sdpa, 3), fixed(flex, 3), fixed(speedup, 2) + "x", fixed(ratio, 2) + "x", fixed(tflops, 1)});
        if (a.decode) {
            // A decode step is timed as one CUDA graph replay (ours: index + top-k +
            // main; SDPA likewise when the peer could capture it); SDPA counts at
            // the faster of its eager and graph times.
            const double sdpa_eager = json_num(peers, "sdpa_decode_ms");
            const double sdpa_graph = json_num(peers, "sdpa_decode_graph_ms");
            const double dsdpa = std::isnan(sdpa_graph) ? sdpa_eager : std::fmin(sdpa_eager, sdpa_graph);
            const double dsparse = step_sparse_ms;
            // Decode FLOPs for one query: 4 Hq d keys + 2 HI dI N.
            const double dwork = 4.0 * fshape.n_heads * fshape.head_dim * std::min<double>(n, double(a.k) * a.block) +
                                 2.0 * fshape.index_heads * fshape.index_dim * n;
            const double ddense = 4.0 * fshape.n_heads * fshape.head_dim * n;
            decode_rows.push_back({{"context", n},
                                   {"dense_ms", step_dense_ms},
                                   {"sparse_ms", dsparse},
                                   {"index_ms", di_ms},
                                   {"index_scores_ms", dscore_ms},
                                   {"main_ms", ds_ms},
                                   {"dense_eager_ms", dd_ms},
                                   {"sparse_eager_ms", di_ms + ds_ms},
                                   {"sdpa_eager_ms", number_or_null(sdpa_eager)},
                                   {"sdpa_graph_ms", number_or_null(sdpa_graph)},
                                   {"speedup", number_or_null(dsdpa / dsparse)},
                                   {"speedup_vs_ours_dense", step_dense_ms / dsparse},
                                   {"flops_ratio", ddense / dwork},
                                   {"sparse_tflops", dwork / (dsparse * 1e9)},
                                   {"sdpa_ms", number_or_null(dsdpa)}});
            dtable.add({std::to_string(n), fixed(step_dense_ms, 4), fixed(dsparse, 4), fixed(di_ms, 4), fixed(dsdpa, 4),
                        fixed(dsdpa / dsparse, 2) + "x"});
        }
        if (recorder) recorder->add_context(rows.back(), a.decode ? decode_rows.back() : nlohmann::json(), context_kernels);
    }
    if (recorder) recorder->finish(warnings, peer_info);
    if (a.json) {
        nlohmann::json out = {{"device", device},
                              {"shape", shape_json},
                              {"k", a.k},
                              {"block", a.block},
                              {"reps", a.reps},
                              {"rows", rows},
                              {"peers", peer_info},
                              {"warnings", warnings}};
        if (a.decode) out["decode_rows"] = decode_rows;
        if (a.profile) out["kernels"] = kernels;
        out["session"] = recorder ? nlohmann::json(a.session) : nlohmann::json(nullptr);
        out["run_id"] = recorder ? nlohmann::json(recorder->run()) : nlohmann::json(nullptr);
        print_json(out);
        return 0;
    }
    std::cout << "Attention kernels on " << device << ", " << fshape.name << " (Hq " << fshape.n_heads << ", Hkv "
              << fshape.n_kv_heads << ", d " << fshape.head_dim << ", index " << fshape.index_heads << "x"
              << fshape.index_dim << "), k " << a.k << ", B " << a.block << "; median of " << a.reps
              << " runs.\nspeedup = SDPA dense / our sparse (index + top-k + main)\n\n";
    table.print(std::cout);
    if (a.decode) {
        std::cout << "\nDecode (one query at the end of the context)\n\n";
        dtable.print(std::cout);
    }
    for (const auto& w : warnings) std::cout << "warning: " << w.get<std::string>() << "\n";
    if (recorder) std::cout << "saved to " << a.session << " as run " << recorder->run() << "\n";
    return 0;
#endif
}

const RegisterCommand registered{Command{
    "bench", "Time dense vs MSA attention kernels on the GPU (with PyTorch peers)", 60, [](CLI::App& sub) {
        auto args = std::make_shared<BenchArgs>();
        sub.add_option("--backend", args->backend, "Backend (cuda)")->capture_default_str();
        sub.add_option("--preset", args->preset, "Attention shape preset (msa-m3)");
        sub.add_option("--model", args->model, "Take the shape from a model file or folder");
        sub.add_option("--context", args->context, "Context lengths, e.g. 8K,32K,128K");
        sub.add_option("--k", args->k, "Blocks kept per query")->capture_default_str();
        sub.add_option("--block", args->block, "Tokens per key block")->capture_default_str();
        sub.add_flag("--decode", args->decode, "Also time one decode step at each context");
        sub.add_option("--session", args->session,
                       "Append the bench to this SQLite session file (a run of kind bench: config, rows, kernels)");
        sub.add_option("--from-json", args->from_json,
                       "Instead of timing: import a `bench --json` result recorded elsewhere into --session (no GPU needed)");
        sub.add_option("--reps", args->reps, "Timed repetitions per op (median)")->capture_default_str();
        sub.add_flag("--no-peers", [args](std::int64_t) { args->peers = false; }, "Skip the PyTorch peers");
        sub.add_flag("--no-flex", [args](std::int64_t) { args->flex = false; }, "Skip FlexAttention");
        sub.add_flag("--profile", args->profile, "Add per-kernel records (CUPTI or CUDA events) to the JSON");
        sub.add_option("--max-dense-context", args->max_dense, "Skip dense runs above this context")
            ->capture_default_str();
        sub.add_flag("--sdpa-always", args->sdpa_always,
                     "Time SDPA dense even above --max-dense-context (about a minute at 1M on an H100)");
        sub.add_option("--peers-script", args->peers_script, "Path of tests/bench/peers_torch.py");
        sub.add_option("--python", args->python, "Python interpreter for the peers")->capture_default_str();
        sub.add_flag("--json", args->json, "Print one JSON object");
        return [args] { return run_bench(*args); };
    }}};

}  // namespace
}  // namespace msa::cli
