#include "core/sha256.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define MSA_SHA256_X86 1
#endif

namespace msa {
namespace {

constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load_be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

#if MSA_SHA256_X86
// The SHA extensions (Intel SHA-NI, AMD Zen) run the rounds in hardware:
// about 5x the portable code, which matters when hashing a model file while
// it loads. The state is kept as ABEF / CDGH, the order the instructions use.
__attribute__((target("sha,sse4.1,ssse3"))) void compress_sha_ni(uint32_t state[8], const uint8_t* data, size_t count) {
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1B);
    __m128i abef = _mm_alignr_epi8(dcba, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, dcba, 0xF0);
    for (size_t blk = 0; blk < count; ++blk, data += 64) {
        const __m128i abef_saved = abef, cdgh_saved = cdgh;
        __m128i w[4];
        for (int group = 0; group < 16; ++group) {
            __m128i& current = w[group & 3];
            if (group < 4) {
                current = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * group)), byte_swap);
            } else {
                // W[t..t+3] from W[t-16..t-1]: msg1 adds sigma0 terms, alignr supplies W[t-7..t-4], msg2 adds sigma1.
                const __m128i prev = w[(group - 1) & 3];
                __m128i next = _mm_sha256msg1_epu32(current, w[(group + 1) & 3]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(prev, w[(group - 2) & 3], 4));
                current = _mm_sha256msg2_epu32(next, prev);
            }
            __m128i message = _mm_add_epi32(current, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kRound + 4 * group)));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, message);
            message = _mm_shuffle_epi32(message, 0x0E);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, message);
        }
        abef = _mm_add_epi32(abef, abef_saved);
        cdgh = _mm_add_epi32(cdgh, cdgh_saved);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state), _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

bool cpu_has_sha_ni() {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool sha = (ebx >> 29) & 1;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    const bool sse41 = (ecx >> 19) & 1, ssse3 = (ecx >> 9) & 1;
    return sha && sse41 && ssse3;
}
#endif

}  // namespace

Sha256::Sha256(bool allow_hardware) : allow_hardware_(allow_hardware) {
    const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(state_, initial, sizeof(state_));
}

void Sha256::compress(const uint8_t* blocks, size_t count) {
#if MSA_SHA256_X86
    static const bool hardware = cpu_has_sha_ni();
    if (hardware && allow_hardware_) {
        compress_sha_ni(state_, blocks, count);
        return;
    }
#endif
    uint32_t s0 = state_[0], s1 = state_[1], s2 = state_[2], s3 = state_[3];
    uint32_t s4 = state_[4], s5 = state_[5], s6 = state_[6], s7 = state_[7];
    for (size_t blk = 0; blk < count; ++blk, blocks += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i) w[i] = load_be32(blocks + 4 * i);
        for (int i = 16; i < 64; ++i) {
            uint32_t g0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t g1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + g0 + w[i - 7] + g1;
        }
        uint32_t a = s0, b = s1, c = s2, d = s3, e = s4, f = s5, g = s6, h = s7;
        for (int i = 0; i < 64; ++i) {
            uint32_t big1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t choose = (e & f) ^ (~e & g);
            uint32_t t1 = h + big1 + choose + kRound[i] + w[i];
            uint32_t big0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = big0 + majority;
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        s0 += a; s1 += b; s2 += c; s3 += d; s4 += e; s5 += f; s6 += g; s7 += h;
    }
    state_[0] = s0; state_[1] = s1; state_[2] = s2; state_[3] = s3;
    state_[4] = s4; state_[5] = s5; state_[6] = s6; state_[7] = s7;
}

void Sha256::update(const void* data, size_t length) {
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    total_bytes_ += length;
    if (buffered_ > 0) {
        size_t take = std::min(length, 64 - buffered_);
        std::memcpy(buffer_ + buffered_, bytes, take);
        buffered_ += take;
        bytes += take;
        length -= take;
        if (buffered_ < 64) return;
        compress(buffer_, 1);
        buffered_ = 0;
    }
    size_t whole = length / 64;
    if (whole) compress(bytes, whole);
    bytes += whole * 64;
    length -= whole * 64;
    std::memcpy(buffer_, bytes, length);
    buffered_ = length;
}

std::string Sha256::hex_digest() {
    // Padding: 0x80, zeros up to 56 mod 64, then the message length in bits, big-endian.
    uint64_t bit_length = total_bytes_ * 8;
    uint8_t pad[72] = {0x80};
    size_t pad_length = (buffered_ < 56) ? 56 - buffered_ : 120 - buffered_;
    for (int i = 0; i < 8; ++i) pad[pad_length + i] = uint8_t(bit_length >> (56 - 8 * i));
    update(pad, pad_length + 8);
    static const char* digits = "0123456789abcdef";
    std::string hex(64, '0');
    for (int i = 0; i < 8; ++i)
        for (int nib = 0; nib < 8; ++nib) hex[i * 8 + nib] = digits[(state_[i] >> (28 - 4 * nib)) & 0xF];
    return hex;
}

std::string sha256_hex(const void* data, size_t length) {
    Sha256 hasher;
    hasher.update(data, length);
    return hasher.hex_digest();
}

}  // namespace msa
