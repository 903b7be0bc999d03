// CPU prefill of the default model: msascope's forward (plain dense, and with
// the MSA diagnostics `run` computes per layer) against llama.cpp on the same
// token ids, GGUF and thread count, in one run. Also GEMM GFLOP/s for the
// model's shapes. Not a test: prints tables.
//
//   bench_prefill [--model PATH] [--threads 2] [--lengths 2048,8192] [--repeats 2]
//                 [--no-llamacpp] [--no-gemm] [--no-forward] [--python python3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/forward.h"
#include "core/gemm.h"
#include "core/model.h"
#include "core/msa.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Args {
    std::string model;
    int threads = 2;
    std::vector<int> lengths{2048, 8192};
    int repeats = 2;
    bool llamacpp = true, gemm = true, forward = true;
    std::string python = "python3";
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr, "bench_prefill: %s\nusage: bench_prefill [--model PATH] [--threads N] [--lengths 2048,8192] "
                         "[--repeats R] [--no-llamacpp] [--no-gemm] [--no-forward] [--python python3]\n", msg);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    a.model = msa::default_model_path();
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + s).c_str());
            return argv[++i];
        };
        if (s == "--model") a.model = value();
        else if (s == "--threads") a.threads = std::atoi(value().c_str());
        else if (s == "--repeats") a.repeats = std::max(1, std::atoi(value().c_str()));
        else if (s == "--python") a.python = value();
        else if (s == "--no-llamacpp") a.llamacpp = false;
        else if (s == "--no-gemm") a.gemm = false;
        else if (s == "--no-forward") a.forward = false;
        else if (s == "--lengths") {
            a.lengths.clear();
            std::stringstream ss(value());
            for (std::string item; std::getline(ss, item, ',');) a.lengths.push_back(std::atoi(item.c_str()));
        } else usage(("unknown option " + s).c_str());
    }
    if (a.threads < 1) usage("--threads must be >= 1");
    return a;
}

double cpu_mhz() {
    std::ifstream f("/proc/cpuinfo");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("cpu MHz", 0) == 0) return std::atof(line.substr(line.find(':') + 1).c_str());
    return 0;
}

// ---------------------------------------------------------------------------
void bench_gemm(const Args&) {
    const int n = 2048;
    struct Shape { const char* name; int in, out; };
    const Shape shapes[] = {{"q|k|v   576 -> 960", 576, 960},  {"o       576 -> 576", 576, 576},
                            {"gate|up 576 -> 3072", 576, 3072}, {"down   1536 -> 576", 1536, 576},
                            {"lm head 576 -> 49152", 576, 49152}};
    const double mhz = cpu_mhz();
    std::printf("\nGEMM y[N,out] = x[N,in] W^T, N = %d, kernel %s, best of 3 (packing excluded; it is per layer "
                "in the forward)\n", n, msa::gemm_kernel_name());
    std::printf("peak estimate: 2 FMA x 8 lanes x 2 flops x %.0f MHz = %.1f GFLOP/s per core\n", mhz, 32 * mhz / 1e3);
    std::printf("%-22s %12s %12s %10s\n", "shape", "1 thread", "2 threads", "% peak(2)");
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (const Shape& s : shapes) {
        msa::Matrix w;
        w.rows = s.out;
        w.cols = s.in;
        w.data.resize(static_cast<size_t>(s.out) * s.in);
        for (auto& v : w.data) v = u(rng);
        std::vector<float> x(static_cast<size_t>(n) * s.in);
        for (auto& v : x) v = u(rng);
        const msa::PackedWeights p = msa::pack_weights(w, nullptr, 2);
        // The LM head runs as the forward runs it: 512-row x 4096-column tiles.
        const bool tiled = s.out > 8192;
        std::vector<float> y(tiled ? 512 * 4096 : static_cast<size_t>(n) * s.out);
        double gflops[2] = {0, 0};
        for (int ti = 0; ti < 2; ++ti) {
            const int threads = ti + 1;
            double best = 1e30;
            for (int rep = 0; rep < 3; ++rep) {
                const auto t0 = Clock::now();
                if (tiled) {
                    for (int r0 = 0; r0 < n; r0 += 512)
                        for (int c0 = 0; c0 < s.out; c0 += 4096) {
                            msa::GemmOutput o;
                            o.y = y.data();
                            o.ldy = 4096;
                            o.col_begin = c0;
                            o.col_end = std::min(s.out, c0 + 4096);
                            msa::gemm(x.data() + static_cast<size_t>(r0) * s.in, std::min(512, n - r0), s.in, p, o,
                                      threads);
                        }
                } else {
                    msa::GemmOutput o;
                    o.y = y.data();
                    o.ldy = s.out;
                    msa::gemm(x.data(), n, s.in, p, o, threads);
                }
                best = std::min(best, seconds_since(t0));
            }
            gflops[ti] = 2.0 * n * s.in * s.out / best / 1e9;
        }
        std::printf("%-22s %9.1f GF %9.1f GF %9.0f%%\n", s.name, gflops[0], gflops[1],
                    mhz > 0 ? 100 * gflops[1] / (2 * 32 * mhz / 1e3) : 0.0);
    }
}

// ---------------------------------------------------------------------------
std::vector<int> bench_tokens(int n) {
    const std::string path = std::string(MSASCOPE_SOURCE_DIR) + "/tests/fixtures/smollm2_reference.json";
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot open " + path);
    const std::vector<int> text = nlohmann::json::parse(f).at("tokens").get<std::vector<int>>();
    std::vector<int> out;
    while (static_cast<int>(out.size()) < n) out.insert(out.end(), text.begin(), text.end());
    out.resize(n);
    return out;
}

struct ForwardTiming {
    double total = 0, attention = 0, lm_head = 0;
    std::map<std::string, double> diagnostics;  // stage -> s
    double tokens_per_s(int n) const { return n / total; }
};

ForwardTiming time_forward(const msa::Model& model, const std::vector<int>& tokens, int threads, bool diagnostics) {
    ForwardTiming t;
    Clock::time_point head_start{};
    msa::ForwardOptions o;
    o.threads = threads;
    o.progress = [&](double, const std::string& stage) {
        if (stage == "lm head" && head_start == Clock::time_point{}) head_start = Clock::now();
        return true;
    };
    const msa::MsaConfig config;  // defaults: k = 16, B = 128, max pooling, training-free index
    std::vector<float> msa_out;
    o.attention = [&](int, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        auto t0 = Clock::now();
        msa::dense_attention(qkv, out, threads);
        t.attention += seconds_since(t0);
        if (!diagnostics) return;
        // What `run` does per analysed layer: the MSA branch on the same Q/K/V,
        // the dense mass per block, and recall from the two.
        msa_out.resize(static_cast<size_t>(qkv.shape.n_tokens) * qkv.shape.n_heads * qkv.shape.head_dim);
        t0 = Clock::now();
        msa::IndexInputs index = msa::free_index_inputs(qkv);
        msa::MsaLayerOutput layer = msa::msa_attention(qkv, index, config, msa_out.data(), threads, false);
        t.diagnostics["msa attention"] += seconds_since(t0);
        t0 = Clock::now();
        msa::BlockMass mass = msa::dense_block_mass(qkv, config.block, threads);
        t.diagnostics["dense block mass"] += seconds_since(t0);
        t0 = Clock::now();
        std::vector<float> recall = msa::attention_recall(mass, layer.selection, qkv.shape.group_size());
        double err = msa::relative_error(msa_out.data(), out, msa_out.size());
        t.diagnostics["recall + error"] += seconds_since(t0);
        (void)recall;
        (void)err;
    };
    const auto start = Clock::now();
    const msa::ForwardResult r = msa::forward(model, tokens, o);
    t.total = seconds_since(start);
    t.lm_head = std::chrono::duration<double>(Clock::now() - head_start).count();
    if (r.nll.empty()) throw std::runtime_error("forward produced no loss");
    return t;
}

ForwardTiming best_of(const msa::Model& model, const std::vector<int>& tokens, int threads, bool diagnostics,
                      int repeats) {
    ForwardTiming best;
    best.total = 1e30;
    for (int i = 0; i < repeats; ++i) {
        ForwardTiming t = time_forward(model, tokens, threads, diagnostics);
        if (t.total < best.total) best = t;
    }
    return best;
}

struct LlamaCpp {
    bool ok = false;
    double tokens_per_s = 0, seconds = 0;
    std::string note;
};

LlamaCpp run_llamacpp(const Args& args, const std::vector<int>& tokens) {
    LlamaCpp r;
    char path[] = "/tmp/msascope_bench_tokensXXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        r.note = "cannot create a temp file";
        return r;
    }
    {
        std::string s;
        for (int t : tokens) s += std::to_string(t) + ' ';
        if (write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) r.note = "short write";
        close(fd);
    }
    const std::string cmd = args.python + " " + MSASCOPE_SOURCE_DIR + "/tests/bench/llamacpp_prefill.py --model '" +
                            args.model + "' --tokens-file " + path + " --threads " + std::to_string(args.threads) +
                            " --repeats " + std::to_string(args.repeats) + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    if (p) {
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
        pclose(p);
    }
    unlink(path);
    try {
        const auto j = nlohmann::json::parse(out.substr(out.rfind('{')));
        if (j.contains("error")) {
            r.note = j["error"].get<std::string>();
            return r;
        }
        r.ok = true;
        r.tokens_per_s = j.at("tokens_per_s").get<double>();
        r.seconds = j.at("seconds").get<double>();
        r.note = "llama-cpp-python " + j.value("version", std::string("?")) +
                 (j.value("flash_attn", false) ? ", flash attn" : "") + ", logits " + j.value("logits", std::string("?"));
    } catch (const std::exception&) {
        r.note = "no JSON from llamacpp_prefill.py (is llama-cpp-python installed?)";
    }
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    if (args.gemm) bench_gemm(args);
    if (!args.forward) return 0;
    if (access(args.model.c_str(), R_OK) != 0) {
        std::fprintf(stderr, "bench_prefill: model not found: %s\n", args.model.c_str());
        return 2;
    }
    const auto load_start = Clock::now();
    const msa::Model model = msa::load_model(args.model);
    std::printf("\nmodel %s loaded in %.1f s; %d threads; best of %d runs each\n", args.model.c_str(),
                seconds_since(load_start), args.threads, args.repeats);

    struct Row { int n; ForwardTiming plain, diag; LlamaCpp ref; };
    std::vector<Row> rows;
    for (int n : args.lengths) {
        const std::vector<int> tokens = bench_tokens(n);
        Row row{n, best_of(model, tokens, args.threads, false, args.repeats),
                best_of(model, tokens, args.threads, true, args.repeats), {}};
        if (args.llamacpp) row.ref = run_llamacpp(args, tokens);
        const ForwardTiming& p = row.plain;
        std::printf("\nN = %d  plain forward %.2f s: attention %.2f s (%.0f%%), LM head %.2f s (%.0f%%), "
                    "GEMMs + norms + RoPE %.2f s (%.0f%%)\n", n, p.total, p.attention, 100 * p.attention / p.total,
                    p.lm_head, 100 * p.lm_head / p.total, p.total - p.attention - p.lm_head,
                    100 * (p.total - p.attention - p.lm_head) / p.total);
        std::printf("         diagnostics forward %.2f s:", row.diag.total);
        for (const auto& [stage, s] : row.diag.diagnostics) std::printf(" %s %.2f s,", stage.c_str(), s);
        std::printf(" dense attention %.2f s\n", row.diag.attention);
        if (args.llamacpp)
            std::printf("         llama.cpp: %s\n", row.ref.ok ? (std::to_string(row.ref.seconds) + " s, " + row.ref.note).c_str()
                                                           : row.ref.note.c_str());
        std::fflush(stdout);
        rows.push_back(row);
    }
    std::printf("\n%7s %14s %14s %14s %12s %12s\n", "tokens", "ours tok/s", "diag tok/s", "llama.cpp", "ours/llama",
                "diag/plain");
    for (const Row& r : rows) {
        const double ours = r.plain.tokens_per_s(r.n), diag = r.diag.tokens_per_s(r.n);
        if (r.ref.ok)
            std::printf("%7d %14.1f %14.1f %14.1f %11.2fx %11.2fx\n", r.n, ours, diag, r.ref.tokens_per_s,
                        ours / r.ref.tokens_per_s, r.diag.total / r.plain.total);
        else
            std::printf("%7d %14.1f %14.1f %14s %12s %11.2fx\n", r.n, ours, diag, "-", "-", r.diag.total / r.plain.total);
    }
    return 0;
}
