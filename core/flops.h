#pragma once
// Analytic FLOPs: per kernel launch and the per-token model of
// ../shared/REFERENCE.md ("FLOPs model"). 2 FLOPs per multiply-add.
#include <string>
#include <vector>

namespace msa {

struct AttentionFlopsShape {
    std::string name;
    int n_heads = 64;        // Hq
    int n_kv_heads = 4;
    int head_dim = 128;      // dh
    int index_heads = 4;     // HI
    int index_dim = 128;     // dI
};

AttentionFlopsShape msa_m3_shape();  // MiniMax-M3: 64 q heads, 4 kv, d 128, 4 index heads x 128

// Per layer, per token, averaged over a causal prefill of length n.
double dense_flops_per_token(const AttentionFlopsShape& s, double n);
double msa_flops_per_token(const AttentionFlopsShape& s, double n, int k, int block);
double flops_ratio(const AttentionFlopsShape& s, double n, int k, int block);
double flops_ratio_ceiling(const AttentionFlopsShape& s);  // 2*Hq*dh / (HI*dI)

// Exact counts for one causal prefill of n tokens (whole layer, not per token).
double dense_attention_flops(int n_tokens, int n_heads, int head_dim);
double index_flops(int n_tokens, int index_heads, int index_dim);  // q.k over visible keys
double sparse_attention_flops(int n_tokens, int n_heads, int head_dim, int k, int block);  // visible selected keys

// Parses "4096,64K,1M" (K = 1024, M = 1048576). Throws InputError.
std::vector<long long> parse_size_list(const std::string& s);
std::vector<int> parse_int_list(const std::string& s);

}  // namespace msa
