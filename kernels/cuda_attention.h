#pragma once
// The CUDA side of the MSA engine as plain C++ (no CUDA types): what app/ code,
// the GPU tests and `msascope-cli bench` call. Inputs are host float arrays in
// the layouts of core/msa.h; they are rounded to bf16 on upload, kernels
// accumulate in fp32, outputs come back as float.
//
// Everything here throws msa::InputError for bad shapes/arguments and
// std::runtime_error for CUDA failures; cuda_available() never throws.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/msa.h"
#include "core/run_result.h"
#include "kernels/sparse_order.h"

namespace msa::cuda {

struct DeviceInfo {
    bool available = false;
    std::string reason;  // why not, when !available
    std::string name;
    int compute_major = 0, compute_minor = 0;
    int multiprocessors = 0;
    size_t memory_bytes = 0;
};
// Probes the driver and device 0 without aborting (no GPU, no driver, too old a driver: available = false).
DeviceInfo device_info();
bool cuda_available(std::string* reason = nullptr);

// Owned device memory, move-only.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& o) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* data() const { return ptr_; }
    size_t bytes() const { return bytes_; }
    void upload(const void* src, size_t bytes, size_t offset = 0);
    void download(void* dst, size_t bytes, size_t offset = 0) const;
    void fill_bytes(int value);
    // float -> bf16 upload / bf16 -> float download (count elements).
    void upload_bf16(const float* src, size_t count);
    void download_bf16(float* dst, size_t count) const;

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

// Rounds to the nearest bf16 (ties to even), as the uploads do.
float round_bf16(float x);

// ---- ops on host arrays -----------------------------------------------------------
void dense_attention(const QKV& qkv, float* out);
// Index scoring + pooling + top-k for every token. scores_out (optional) gets
// the block scores [N, G, nb]. Selection slots = max(k, forced) as on the CPU.
Selection select_blocks(const IndexInputs& index, const MsaConfig& config, BlockScores* scores_out = nullptr);
void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out,
                      SparseOrder order = SparseOrder::automatic);

// Decode: one query at position n_kv - 1 against a cache of n_kv keys.
// q: [Hq, d]; cache.k / cache.v: [n_kv, Hkv, d] (cache.q unused); out: [Hq, d].
void dense_decode(const float* q, const QKV& cache, float* out);
// q_idx: [G, dim]; keys: index.k [n_kv, n_key_heads, dim] (index.q unused, n_tokens = n_kv).
// Returns [G, slots] (ascending, -1 padded); scores_out (optional) [G, nb].
std::vector<int32_t> decode_select(const float* q_idx, const IndexInputs& keys, const MsaConfig& config, int* slots,
                                   std::vector<float>* scores_out = nullptr);
void sparse_decode(const float* q, const QKV& cache, const int32_t* selection, int slots, int block, float* out);

// ---- device-resident benchmark harness -------------------------------------------
struct BenchShape {
    int n_tokens = 0;
    int n_heads = 64, n_kv_heads = 4, head_dim = 128;
    int index_key_heads = 1;  // 1: one shared index key head (MiniMax); n_kv_heads: training-free
    int index_dim = 128;
    MsaConfig config;
};

// Allocates Q, K, V, the index inputs and the outputs on the device, fills them
// with seeded pseudo-random bf16 (unit variance), and times each op with CUDA
// events (median of reps after one warm-up).
class AttentionBench {
public:
    AttentionBench(const BenchShape& shape, uint64_t seed);
    ~AttentionBench();
    AttentionBench(const AttentionBench&) = delete;
    AttentionBench& operator=(const AttentionBench&) = delete;

    double time_dense(int reps);
    double time_index(int reps);   // index scores + pooling + top-k
    double time_sparse(int reps);  // main branch on the last selection
    double time_dense_decode(int reps);
    double time_index_decode(int reps);
    double time_sparse_decode(int reps);
    double time_index_decode_scores(int reps);  // decode index scoring alone (no top-k)
    // One whole decode step (sparse: index + top-k + main; else dense) as a
    // CUDA graph, the time per replay.
    double time_decode_step(int reps, bool sparse);
    // One index + sparse (+ dense, + one decode step) pass under the kernel
    // collector; analytic cost attached.
    std::vector<KernelRecord> profile(bool prefer_cupti, std::string* warning, bool dense = true, bool decode = false);
    // Raw int32 [N, G, slots] of the current selection, for the peers' block mask.
    void save_selection(const std::string& path) const;
    int slots() const;
    size_t device_bytes() const;

    struct State;

private:
    std::unique_ptr<State> s_;
};

}  // namespace msa::cuda
