#include "core/dequant.h"

#include <cstring>

#include "core/errors.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace msa {
namespace {

inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// ---- block layouts (bytes) ----
// Q4_0 (32 elements, 18 bytes): half d; 16 bytes of nibbles. Element j < 16 is
//   the low nibble of byte j, element j + 16 its high nibble; value (q - 8) * d.
// Q4_1 (32, 20): half d, half m; nibbles as Q4_0; value q * d + m.
// Q8_0 (32, 34): half d; 32 int8; value q * d.
// Q4_K (256, 144): half d, half dmin, 12 bytes of packed 6-bit (scale, min)
//   pairs for 8 sub-blocks of 32, 128 bytes of nibbles. Sub-blocks go in pairs
//   over 32 bytes: the low nibbles are sub-block 2k, the high nibbles 2k + 1.
//   value = d * scale * q - dmin * min.
// Q6_K (256, 210): 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8
//   scales (one per 16 elements), half d; value = d * scale * (q - 32).

void dequant_q4_0(const uint8_t* src, float* dst, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 18, dst += 32) {
        const float d = half_to_float(load_u16(src));
        const uint8_t* qs = src + 2;
        for (int j = 0; j < 16; ++j) {
            dst[j] = float(int(qs[j] & 0x0F) - 8) * d;
            dst[j + 16] = float(int(qs[j] >> 4) - 8) * d;
        }
    }
}

void dequant_q4_1(const uint8_t* src, float* dst, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 20, dst += 32) {
        const float d = half_to_float(load_u16(src));
        const float m = half_to_float(load_u16(src + 2));
        const uint8_t* qs = src + 4;
        for (int j = 0; j < 16; ++j) {
            dst[j] = float(qs[j] & 0x0F) * d + m;
            dst[j + 16] = float(qs[j] >> 4) * d + m;
        }
    }
}

void dequant_q8_0(const uint8_t* src, float* dst, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 34, dst += 32) {
        const float d = half_to_float(load_u16(src));
        const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
        for (int j = 0; j < 32; ++j) dst[j] = float(qs[j]) * d;
    }
}

// The 12 scale bytes of Q4_K/Q5_K hold 8 six-bit scales and 8 six-bit mins:
// sub-blocks 0-3 use the low 6 bits of bytes 0-3 (scale) and 4-7 (min);
// sub-blocks 4-7 take their low 4 bits from bytes 8-11 and their top 2 bits
// from the spare high bits of bytes 0-3 (scale) and 4-7 (min).
inline void k_scale_min(int sub, const uint8_t* packed, int& scale, int& min) {
    if (sub < 4) {
        scale = packed[sub] & 63;
        min = packed[sub + 4] & 63;
    } else {
        scale = (packed[sub + 4] & 0x0F) | ((packed[sub - 4] >> 6) << 4);
        min = (packed[sub + 4] >> 4) | ((packed[sub] >> 6) << 4);
    }
}

void dequant_q4_k(const uint8_t* src, float* dst, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 144) {
        const float d = half_to_float(load_u16(src));
        const float dmin = half_to_float(load_u16(src + 2));
        const uint8_t* packed = src + 4;
        const uint8_t* qs = src + 16;
        for (int pair = 0; pair < 4; ++pair, qs += 32) {
            int sc0, mn0, sc1, mn1;
            k_scale_min(2 * pair, packed, sc0, mn0);
            k_scale_min(2 * pair + 1, packed, sc1, mn1);
            const float d0 = d * sc0, m0 = dmin * mn0, d1 = d * sc1, m1 = dmin * mn1;
            for (int l = 0; l < 32; ++l) dst[l] = d0 * float(qs[l] & 0x0F) - m0;
            for (int l = 0; l < 32; ++l) dst[32 + l] = d1 * float(qs[l] >> 4) - m1;
            dst += 64;
        }
    }
}

void dequant_q6_k(const uint8_t* src, float* dst, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 210) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* scales = reinterpret_cast<const int8_t*>(src + 192);
        const float d = half_to_float(load_u16(src + 208));
        // Two halves of 128 elements; within a half, element l (l < 32) and its
        // siblings l+32, l+64, l+96 share byte qh[l] (2 bits each) and draw their
        // low bits from ql[l] / ql[l+32] (low nibble, then high nibble).
        for (int half = 0; half < 2; ++half, ql += 64, qh += 32, scales += 8, dst += 128) {
            for (int l = 0; l < 32; ++l) {
                const int s = l / 16;
                const int q1 = int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * float(scales[s]) * float(q1);
                dst[l + 32] = d * float(scales[s + 2]) * float(q2);
                dst[l + 64] = d * float(scales[s + 4]) * float(q3);
                dst[l + 96] = d * float(scales[s + 6]) * float(q4);
            }
        }
    }
}

}  // namespace

float half_to_float(uint16_t bits) {
#if defined(__F16C__)
    return _cvtsh_ss(bits);
#else
    const uint32_t sign = uint32_t(bits & 0x8000) << 16;
    uint32_t exponent = (bits >> 10) & 0x1F;
    uint32_t mantissa = bits & 0x3FF;
    uint32_t out;
    if (exponent == 0x1F) {
        out = sign | 0x7F800000u | (mantissa << 13);  // inf / nan
    } else if (exponent != 0) {
        out = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        out = sign;
    } else {
        // subnormal half: normalise into a float exponent
        int shift = 0;
        while (!(mantissa & 0x400)) {
            mantissa <<= 1;
            ++shift;
        }
        mantissa &= 0x3FF;
        out = sign | (uint32_t(113 - shift) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &out, 4);
    return f;
#endif
}

uint16_t float_to_half(float value) {
    uint32_t x;
    std::memcpy(&x, &value, 4);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000);
    const uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) return uint16_t(sign | 0x7C00 | (abs > 0x7F800000u ? 0x200 : 0));  // inf / nan
    if (abs >= 0x477FF000u) return uint16_t(sign | 0x7C00);  // rounds past 65504: inf
    if (abs < 0x38800000u) {
        // result is subnormal (or zero): value / 2^-24, rounded to nearest even
        if (abs < 0x33000000u) return sign;  // below half of the smallest subnormal
        const uint32_t exponent = abs >> 23;
        const uint32_t mantissa = (abs & 0x7FFFFF) | 0x800000;
        const int shift = 126 - int(exponent);  // bits dropped to land on 2^-24 units
        uint32_t q = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (q & 1))) ++q;
        return uint16_t(sign | q);
    }
    uint32_t h = ((abs >> 13) - (112u << 10));
    const uint32_t rest = abs & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // carry into the exponent is correct
    return uint16_t(sign | h);
}

float bfloat16_to_float(uint16_t bits) {
    const uint32_t x = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

uint16_t float_to_bfloat16(float value) {
    uint32_t x;
    std::memcpy(&x, &value, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x40);  // keep nan a nan
    x += 0x7FFF + ((x >> 16) & 1);
    return uint16_t(x >> 16);
}

GgmlTypeTraits ggml_type_traits(uint32_t type_id) {
    switch (static_cast<GgmlType>(type_id)) {
        case GgmlType::F32: return {"F32", 1, 4, true};
        case GgmlType::F16: return {"F16", 1, 2, true};
        case GgmlType::Q4_0: return {"Q4_0", 32, 18, true};
        case GgmlType::Q4_1: return {"Q4_1", 32, 20, true};
        case GgmlType::Q5_0: return {"Q5_0", 32, 22, false};
        case GgmlType::Q5_1: return {"Q5_1", 32, 24, false};
        case GgmlType::Q8_0: return {"Q8_0", 32, 34, true};
        case GgmlType::Q8_1: return {"Q8_1", 32, 36, false};
        case GgmlType::Q2_K: return {"Q2_K", 256, 84, false};
        case GgmlType::Q3_K: return {"Q3_K", 256, 110, false};
        case GgmlType::Q4_K: return {"Q4_K", 256, 144, true};
        case GgmlType::Q5_K: return {"Q5_K", 256, 176, false};
        case GgmlType::Q6_K: return {"Q6_K", 256, 210, true};
        case GgmlType::Q8_K: return {"Q8_K", 256, 292, false};
        case GgmlType::I8: return {"I8", 1, 1, false};
        case GgmlType::I16: return {"I16", 1, 2, false};
        case GgmlType::I32: return {"I32", 1, 4, false};
        case GgmlType::I64: return {"I64", 1, 8, false};
        case GgmlType::F64: return {"F64", 1, 8, false};
        case GgmlType::BF16: return {"BF16", 1, 2, true};
    }
    return {};
}

std::string ggml_type_name(uint32_t type_id) {
    GgmlTypeTraits traits = ggml_type_traits(type_id);
    return traits.name ? std::string(traits.name) : "type#" + std::to_string(type_id);
}

void dequantize(GgmlType type, const void* src_ptr, float* dst, size_t count) {
    const uint8_t* src = static_cast<const uint8_t*>(src_ptr);
    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, src, count * 4);
            return;
        case GgmlType::F16:
            for (size_t i = 0; i < count; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
            return;
        case GgmlType::BF16:
            for (size_t i = 0; i < count; ++i) dst[i] = bfloat16_to_float(load_u16(src + 2 * i));
            return;
        case GgmlType::Q4_0: dequant_q4_0(src, dst, count / 32); return;
        case GgmlType::Q4_1: dequant_q4_1(src, dst, count / 32); return;
        case GgmlType::Q8_0: dequant_q8_0(src, dst, count / 32); return;
        case GgmlType::Q4_K: dequant_q4_k(src, dst, count / 256); return;
        case GgmlType::Q6_K: dequant_q6_k(src, dst, count / 256); return;
        default:
            break;
    }
    throw InputError("cannot dequantize tensor type " + ggml_type_name(static_cast<uint32_t>(type)));
}

}  // namespace msa
