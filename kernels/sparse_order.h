#pragma once
// Which way round the MSA main branch runs on the GPU (plain C++: the host API
// and the kernels share it). See sparse_attention.cuh and sparse_block_major.cuh.
//   token_major: each (token, group) stages its own selected blocks
//   block_major: each selected block is staged once per 64 (token, slot)
//                entries that chose it; per-block partials are merged after
//   automatic:   block-major for long prefills of large groups (r >= 8),
//                token-major otherwise
namespace msa {
enum class SparseOrder : int { automatic = 0, token_major = 1, block_major = 2 };
}
