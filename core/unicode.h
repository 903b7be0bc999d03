#pragma once
// The little Unicode the tokenizer needs: UTF-8 decoding that never throws,
// and the code-point classes (\p{L}, \p{N}, \s) of the pre-tokenizer patterns.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace msa::unicode {

enum CodepointClass : uint8_t {
    kLetter = 1,      // \p{L}
    kNumber = 2,      // \p{N}
    kWhiteSpace = 4,  // \s (Unicode White_Space)
};

// Bitwise OR of CodepointClass values; 0 for everything else (punctuation,
// symbols, marks, unassigned, and the replacement character).
uint8_t codepoint_class(uint32_t cp);
inline bool is_letter(uint32_t cp) { return codepoint_class(cp) & kLetter; }
inline bool is_number(uint32_t cp) { return codepoint_class(cp) & kNumber; }
inline bool is_white_space(uint32_t cp) { return codepoint_class(cp) & kWhiteSpace; }

constexpr uint32_t kReplacementCharacter = 0xFFFD;

struct DecodedCodepoint {
    uint32_t cp;      // kReplacementCharacter when !valid
    uint32_t length;  // bytes consumed, >= 1
    bool valid;
};

// Decodes the code point starting at text[pos] (pos < text.size()). Malformed
// input (stray continuation byte, truncated or overlong sequence, surrogate,
// value above U+10FFFF) consumes exactly one byte and reports !valid, so a
// caller that keeps byte offsets can still reproduce the input byte for byte.
DecodedCodepoint decode_utf8(std::string_view text, size_t pos);

void append_utf8(std::string& out, uint32_t cp);
inline std::string to_utf8(uint32_t cp) {
    std::string out;
    append_utf8(out, cp);
    return out;
}

}  // namespace msa::unicode
