#pragma once
// ggml tensor types and their dequantization to float32.
// Block layouts follow ggml (ggml-common.h): every quantized type stores a
// fixed number of elements per block in a fixed number of bytes, with the
// block scale(s) as IEEE half floats.
#include <cstddef>
#include <cstdint>
#include <string>

namespace msa {

// Numeric ids as written in GGUF tensor infos (ggml_type).
enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

struct GgmlTypeTraits {
    const char* name = nullptr;  // nullptr: an id this program does not know
    uint32_t block_elements = 0;  // elements per block (1 for plain types)
    uint32_t block_bytes = 0;     // bytes per block
    bool dequantizable = false;   // we can turn it into float32
};

// Traits of a raw type id from a file; unknown ids give name == nullptr.
GgmlTypeTraits ggml_type_traits(uint32_t type_id);
// "Q4_1", or "type#99" for unknown ids.
std::string ggml_type_name(uint32_t type_id);

// Dequantizes `count` elements (a multiple of the type's block size) from
// `src` to `dst`. The caller has checked that src holds count/block_elements
// blocks. Throws InputError for a type that cannot be dequantized.
void dequantize(GgmlType type, const void* src, float* dst, size_t count);

float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);      // round to nearest even
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);  // round to nearest even

}  // namespace msa
