#include "core/unicode.h"

#include <algorithm>
#include <array>

namespace msa::unicode {

namespace {

struct CodepointRange {
    uint32_t first;
    uint32_t last;
};

#include "core/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodepointRange (&ranges)[N], uint32_t cp) {
    const CodepointRange* end = ranges + N;
    // The first range whose last code point is >= cp is the only candidate.
    const CodepointRange* it =
        std::lower_bound(ranges, end, cp, [](const CodepointRange& r, uint32_t value) { return r.last < value; });
    return it != end && it->first <= cp;
}

uint8_t classify_by_search(uint32_t cp) {
    uint8_t cls = 0;
    if (in_ranges(kLetterRanges, cp)) cls |= kLetter;
    if (in_ranges(kNumberRanges, cp)) cls |= kNumber;
    if (in_ranges(kWhiteSpaceRanges, cp)) cls |= kWhiteSpace;
    return cls;
}

// Almost all text lives in the Basic Multilingual Plane, so its classes are
// looked up in a flat table (64 KiB, built once) instead of three searches.
constexpr uint32_t kTableSize = 0x10000;

const std::array<uint8_t, kTableSize>& bmp_classes() {
    static const std::array<uint8_t, kTableSize> table = [] {
        std::array<uint8_t, kTableSize> t{};
        for (uint32_t cp = 0; cp < kTableSize; ++cp) t[cp] = classify_by_search(cp);
        return t;
    }();
    return table;
}

}  // namespace

uint8_t codepoint_class(uint32_t cp) {
    if (cp < kTableSize) return bmp_classes()[cp];
    return classify_by_search(cp);
}

DecodedCodepoint decode_utf8(std::string_view text, size_t pos) {
    const DecodedCodepoint invalid{kReplacementCharacter, 1, false};
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    const uint8_t lead = byte(pos);
    if (lead < 0x80) return {lead, 1, true};

    uint32_t length;
    uint32_t cp;
    uint32_t minimum;  // smallest code point this length may encode; below it is an overlong form
    if ((lead & 0xE0) == 0xC0) {
        length = 2, cp = lead & 0x1F, minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, cp = lead & 0x0F, minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, cp = lead & 0x07, minimum = 0x10000;
    } else {
        return invalid;  // continuation byte or 0xF8..0xFF as a lead
    }
    if (pos + length > text.size()) return invalid;
    for (uint32_t i = 1; i < length; ++i) {
        const uint8_t b = byte(pos + i);
        if ((b & 0xC0) != 0x80) return invalid;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
    return {cp, length, true};
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace msa::unicode
