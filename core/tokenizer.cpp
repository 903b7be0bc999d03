#include "core/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/errors.h"
#include "core/unicode.h"

namespace msa {

namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhiteSpace;
constexpr uint8_t kLetterNumberSpace = kLetter | kNumber | kWhiteSpace;

// GGUF token types.
constexpr int kTypeUnknown = 2;
constexpr int kTypeControl = 3;
constexpr int kTypeUserDefined = 4;

// ---------------------------------------------------------------------------
// GPT-2's byte <-> printable character mapping. Byte-level BPE vocabularies
// store every token as a string of these characters, one per byte, so that
// no token text holds a control character or a lone space.

struct ByteMapping {
    std::array<uint32_t, 256> byte_to_cp{};
    // Inverse, for code points below 512 (all the mapping produces); -1 = none.
    std::array<int, 512> cp_to_byte{};

    ByteMapping() {
        cp_to_byte.fill(-1);
        uint32_t next_unprintable = 256;
        for (int b = 0; b < 256; ++b) {
            // Visible Latin-1 characters stand for themselves; the rest
            // (controls, space, DEL, NBSP, soft hyphen) are moved to 256+.
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : next_unprintable++;
            byte_to_cp[b] = cp;
            cp_to_byte[cp] = b;
        }
    }
};

const ByteMapping& byte_mapping() {
    static const ByteMapping mapping;
    return mapping;
}

std::string bytes_to_token_text(std::string_view bytes) {
    std::string out;
    for (unsigned char b : bytes) unicode::append_utf8(out, byte_mapping().byte_to_cp[b]);
    return out;
}

// The bytes a byte-level token text stands for. A character outside the
// mapping (a malformed vocabulary) keeps its own UTF-8 bytes rather than vanish.
std::string token_text_to_bytes(std::string_view text) {
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
        const unicode::DecodedCodepoint d = unicode::decode_utf8(text, pos);
        const int byte = d.valid && d.cp < 512 ? byte_mapping().cp_to_byte[d.cp] : -1;
        if (byte >= 0)
            out.push_back(static_cast<char>(byte));
        else
            out.append(text.substr(pos, d.length));
        pos += d.length;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Pre-tokenizers: hand-written scanners equivalent to the regexes of each
// model family, run over UTF-8 code points without building a code-point array
// (a text of any size is split in one pass with constant extra memory).

enum class PreTokenizer { kGpt2, kSmollm, kLlama3, kQwen2 };

PreTokenizer parse_pre_tokenizer(const std::string& name) {
    if (name == "gpt2" || name == "default") return PreTokenizer::kGpt2;
    if (name == "smollm") return PreTokenizer::kSmollm;
    if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizer::kLlama3;
    if (name == "qwen2") return PreTokenizer::kQwen2;
    throw InputError("unsupported tokenizer pre-tokenizer '" + name +
                     "' (supported: gpt2, default, smollm, llama-bpe (llama3, llama-v3), qwen2)");
}

struct Char {
    uint32_t cp = 0;
    uint8_t cls = 0;
    uint32_t len = 0;  // 0: past the end of the range being split
    bool present() const { return len != 0; }
    bool has(uint8_t c) const { return len != 0 && (cls & c); }
    bool is_cr_or_lf() const { return len != 0 && (cp == '\r' || cp == '\n'); }
};

// Reads code points of text[..end); positions beyond end read as absent, which
// is how a regex sees the end of its subject.
class CharReader {
public:
    CharReader(std::string_view text, size_t end) : text_(text), end_(end) {}
    Char at(size_t pos) const {
        if (pos >= end_) return {};
        const auto lead = static_cast<unsigned char>(text_[pos]);
        if (lead < 0x80) return {lead, unicode::codepoint_class(lead), 1};
        // Decoding stops at end_, so a sequence cut by a range boundary reads
        // as invalid single bytes, as it would for the regex on that range.
        const unicode::DecodedCodepoint d = unicode::decode_utf8(text_.substr(0, end_), pos);
        return {d.cp, d.valid ? unicode::codepoint_class(d.cp) : uint8_t{0}, d.length};
    }
    // End of the run of characters for which keep(Char) holds, from pos.
    template <class Keep>
    size_t run(size_t pos, Keep keep) const {
        for (Char c = at(pos); c.present() && keep(c); c = at(pos)) pos += c.len;
        return pos;
    }
    size_t end() const { return end_; }

private:
    std::string_view text_;
    size_t end_;
};

bool is_ascii_lower(uint32_t cp, char lower, bool ignore_case) {
    return cp == static_cast<uint32_t>(lower) ||
           (ignore_case && cp == static_cast<uint32_t>(lower - 'a' + 'A'));
}

// Length in bytes of a contraction ('s 't 're 've 'm 'll 'd) at pos, or 0.
size_t contraction_length(const CharReader& r, size_t pos, bool ignore_case) {
    if (r.at(pos).cp != '\'') return 0;
    const Char c1 = r.at(pos + 1);
    if (!c1.present()) return 0;
    for (char single : {'s', 't', 'm', 'd'})
        if (is_ascii_lower(c1.cp, single, ignore_case)) return 2;
    const Char c2 = r.at(pos + 2);
    if (!c2.present()) return 0;
    static constexpr std::pair<char, char> kPairs[] = {{'r', 'e'}, {'v', 'e'}, {'l', 'l'}};
    for (const auto& [a, b] : kPairs)
        if (is_ascii_lower(c1.cp, a, ignore_case) && is_ascii_lower(c2.cp, b, ignore_case)) return 3;
    return 0;
}

// \s+(?!\S)|\s+ from pos (a white-space character): a run of white space
// followed by more text leaves its last character to start the next piece,
// so that " word" keeps its space.
size_t white_space_end(const CharReader& r, size_t pos) {
    size_t last_start = pos;
    size_t count = 0;
    size_t p = pos;
    for (Char c = r.at(p); c.has(kWhiteSpace); c = r.at(p)) {
        last_start = p;
        p += c.len;
        ++count;
    }
    if (count > 1 && p < r.end()) return last_start;
    return p;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
template <class Emit>
void split_gpt2(std::string_view text, size_t begin, size_t end, Emit& emit) {
    const CharReader r(text, end);
    size_t pos = begin;
    while (pos < end) {
        const size_t start = pos;
        const Char c = r.at(pos);
        if (const size_t n = contraction_length(r, pos, /*ignore_case=*/false)) {
            pos += n;
        } else {
            // An optional leading space joins the run of the class that follows it.
            const size_t body = c.cp == ' ' ? pos + 1 : pos;
            const Char lead = c.cp == ' ' ? r.at(body) : c;
            if (lead.has(kLetter)) {
                pos = r.run(body, [](Char x) { return x.cls & kLetter; });
            } else if (lead.has(kNumber)) {
                pos = r.run(body, [](Char x) { return x.cls & kNumber; });
            } else if (lead.present() && !(lead.cls & kLetterNumberSpace)) {
                pos = r.run(body, [](Char x) { return !(x.cls & kLetterNumberSpace); });
            } else if (c.has(kWhiteSpace)) {
                pos = white_space_end(r, pos);
            } else {
                pos += c.len;  // unreachable by the pattern's construction; keeps progress certain
            }
        }
        emit(start, pos);
    }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <class Emit>
void split_llama3(std::string_view text, size_t begin, size_t end, int max_digits, Emit& emit) {
    const CharReader r(text, end);
    size_t pos = begin;
    while (pos < end) {
        const size_t start = pos;
        const Char c = r.at(pos);
        if (const size_t n = contraction_length(r, pos, /*ignore_case=*/true)) {
            pos += n;
            emit(start, pos);
            continue;
        }
        if (!c.is_cr_or_lf() && !(c.cls & kNumber) && ((c.cls & kLetter) || r.at(pos + c.len).has(kLetter))) {
            pos = r.run(pos + c.len, [](Char x) { return x.cls & kLetter; });
            emit(start, pos);
            continue;
        }
        if (c.cls & kNumber) {
            int digits = 0;
            pos = r.run(pos, [&](Char x) { return (x.cls & kNumber) && digits++ < max_digits; });
            emit(start, pos);
            continue;
        }
        const size_t body = c.cp == ' ' ? pos + 1 : pos;
        const Char lead = c.cp == ' ' ? r.at(body) : c;
        if (lead.present() && !(lead.cls & kLetterNumberSpace)) {
            pos = r.run(body, [](Char x) { return !(x.cls & kLetterNumberSpace); });
            pos = r.run(pos, [](Char x) { return x.is_cr_or_lf(); });
            emit(start, pos);
            continue;
        }
        if (c.has(kWhiteSpace)) {
            // \s*[\r\n]+ ends right after the last line break of the white-space run.
            size_t after_last_break = 0;
            for (size_t p = pos; r.at(p).has(kWhiteSpace); p += r.at(p).len)
                if (r.at(p).is_cr_or_lf()) after_last_break = p + 1;
            pos = after_last_break ? after_last_break : white_space_end(r, pos);
        } else {
            pos += c.len;
        }
        emit(start, pos);
    }
}

// SmolLM2 (and StarCoder): every \p{N} code point is a piece of its own; the
// text between them goes through the GPT-2 pattern separately.
template <class Emit>
void split_smollm(std::string_view text, size_t begin, size_t end, Emit& emit) {
    const CharReader r(text, end);
    size_t segment = begin;
    size_t pos = begin;
    while (pos < end) {
        const Char c = r.at(pos);
        if (c.cls & kNumber) {
            if (segment < pos) split_gpt2(text, segment, pos, emit);
            emit(pos, pos + c.len);
            segment = pos + c.len;
        }
        pos += c.len;
    }
    if (segment < end) split_gpt2(text, segment, end, emit);
}

template <class Emit>
void pre_tokenize_range(PreTokenizer kind, std::string_view text, size_t begin, size_t end, Emit& emit) {
    switch (kind) {
        case PreTokenizer::kGpt2: split_gpt2(text, begin, end, emit); break;
        case PreTokenizer::kSmollm: split_smollm(text, begin, end, emit); break;
        case PreTokenizer::kLlama3: split_llama3(text, begin, end, 3, emit); break;
        case PreTokenizer::kQwen2: split_llama3(text, begin, end, 1, emit); break;
    }
}

// ---------------------------------------------------------------------------

struct MergeRule {
    int rank;
    int result;  // symbol id of the merged pair
};

uint64_t pair_key(int left, int right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Open-addressing hash map from a symbol pair to its merge rule. BPE does a
// lookup for every adjacent pair of every new word, so this sits on the hot
// path; a flat table costs one probe into contiguous memory instead of a
// bucket walk through heap nodes.
class MergeTable {
public:
    void reserve(size_t n) {
        size_t capacity = 16;
        while (capacity < n * 2) capacity *= 2;
        slots_.assign(capacity, Slot{});
        mask_ = capacity - 1;
    }
    // Keeps the first rule for a pair: a duplicate merge line never outranks the earlier one.
    void insert(uint64_t key, MergeRule rule) {
        for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            if (!slots_[i].used) {
                slots_[i] = {key, rule, true};
                return;
            }
            if (slots_[i].key == key) return;
        }
    }
    const MergeRule* find(uint64_t key) const {
        for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            if (!slots_[i].used) return nullptr;
            if (slots_[i].key == key) return &slots_[i].rule;
        }
    }

private:
    struct Slot {
        uint64_t key = 0;
        MergeRule rule{0, 0};
        bool used = false;
    };
    static size_t hash(uint64_t key) {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdULL;
        key ^= key >> 33;
        return static_cast<size_t>(key);
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
};

}  // namespace

struct Tokenizer::Impl {
    PreTokenizer pre = PreTokenizer::kGpt2;
    int vocab_size = 0;
    int bos = -1;
    int eos = -1;
    std::vector<std::string> token_bytes;  // id -> the bytes it stands for
    std::array<int, 256> byte_token{};     // byte -> token id; -1 where the vocabulary has none
    // What a byte without a token becomes: the unknown token (if it is of the
    // unknown type), or else the tokens of U+FFFD. Only such bytes keep
    // decode(encode(s)) from giving s back.
    std::vector<int> unrepresentable;
    // Merge results that are not tokens of the vocabulary get symbol ids from
    // vocab_size on; when one survives BPE it is written out as byte tokens.
    std::vector<std::string> extra_symbol_bytes;
    MergeTable merges;

    struct Literal {
        std::string text;
        int id;
    };
    // Tokens matched literally before pre-tokenization, longest first.
    std::vector<Literal> user_defined;
    std::vector<Literal> user_defined_and_control;

    void bpe(std::string_view piece, std::vector<int>& out) const;
    void bpe_representable(std::string_view piece, std::vector<int>& out) const;  // every byte has a token
    void encode_plain(std::string_view text, std::vector<int>& out) const;
    void encode_with_literals(std::string_view text, const std::vector<Literal>& literals, std::vector<int>& out) const;
    void emit_symbol(int symbol, std::vector<int>& out) const {
        if (symbol < vocab_size) {
            out.push_back(symbol);
        } else {
            for (unsigned char b : extra_symbol_bytes[symbol - vocab_size]) {
                if (byte_token[b] >= 0)
                    out.push_back(byte_token[b]);
                else
                    out.insert(out.end(), unrepresentable.begin(), unrepresentable.end());
            }
        }
    }
};

void Tokenizer::Impl::bpe(std::string_view piece, std::vector<int>& out) const {
    // No merge can involve a byte that has no symbol, so the piece splits there.
    size_t unrepresentable_at = 0;
    while (unrepresentable_at < piece.size() && byte_token[static_cast<unsigned char>(piece[unrepresentable_at])] >= 0)
        ++unrepresentable_at;
    if (unrepresentable_at < piece.size()) {
        size_t segment = 0;
        for (size_t i = unrepresentable_at; i <= piece.size(); ++i) {
            if (i < piece.size() && byte_token[static_cast<unsigned char>(piece[i])] >= 0) continue;
            if (segment < i) bpe_representable(piece.substr(segment, i - segment), out);
            if (i < piece.size()) out.insert(out.end(), unrepresentable.begin(), unrepresentable.end());
            segment = i + 1;
        }
        return;
    }
    bpe_representable(piece, out);
}

// Lowest-rank pair first, ties to the leftmost pair (as GPT-2, Hugging Face
// and llama.cpp all do): a heap of candidate merges over a linked list of
// symbols, with stale candidates skipped when popped. O(n log n) per piece, so
// a megabyte without a space costs about what ordinary prose does per byte.
void Tokenizer::Impl::bpe_representable(std::string_view piece, std::vector<int>& out) const {
    if (piece.size() == 1) {
        out.push_back(byte_token[static_cast<unsigned char>(piece[0])]);
        return;
    }
    struct Symbol {
        int id;  // -1 once merged into its left neighbour
        int prev;
        int next;
    };
    struct Candidate {
        int rank;
        int left;  // index of the left symbol
        int left_id;
        int right_id;
        bool operator<(const Candidate& o) const {  // std heaps are max-heaps: invert
            return rank != o.rank ? rank > o.rank : left > o.left;
        }
    };
    thread_local std::vector<Symbol> symbols;
    thread_local std::vector<Candidate> heap;
    symbols.clear();
    heap.clear();
    const int n = static_cast<int>(piece.size());
    for (int i = 0; i < n; ++i)
        symbols.push_back({byte_token[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1});

    const auto consider = [&](int left) {
        const int right = symbols[left].next;
        if (right < 0) return;
        if (const MergeRule* rule = merges.find(pair_key(symbols[left].id, symbols[right].id))) {
            heap.push_back({rule->rank, left, symbols[left].id, symbols[right].id});
            std::push_heap(heap.begin(), heap.end());
        }
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end());
        const Candidate c = heap.back();
        heap.pop_back();
        Symbol& left = symbols[c.left];
        // Equal ids mean the same pair of strings, hence still the same rule.
        if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
        Symbol& right = symbols[left.next];
        left.id = merges.find(pair_key(c.left_id, c.right_id))->result;
        right.id = -1;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = c.left;
        if (left.prev >= 0) consider(left.prev);
        consider(c.left);
    }
    for (int i = 0; i >= 0; i = symbols[i].next) emit_symbol(symbols[i].id, out);
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int>& out) const {
    // Natural text repeats its words: on a long text, remembering each short
    // piece's ids for the length of this call skips most BPE work. The cache
    // is per call, so encode stays const and safe to call from many threads.
    constexpr size_t kCacheFromBytes = 1 << 14;
    constexpr size_t kMaxCachedPiece = 24;
    constexpr size_t kMaxCacheEntries = 1 << 16;
    if (text.size() < kCacheFromBytes) {
        auto emit = [&](size_t begin, size_t end) { bpe(text.substr(begin, end - begin), out); };
        pre_tokenize_range(pre, text, 0, text.size(), emit);
        return;
    }
    struct Span {
        uint32_t first;
        uint32_t count;
    };
    std::unordered_map<std::string_view, Span> cache;  // keys point into text
    cache.reserve(1 << 12);
    auto emit = [&](size_t begin, size_t end) {
        const std::string_view piece = text.substr(begin, end - begin);
        if (piece.size() > kMaxCachedPiece) {
            bpe(piece, out);
            return;
        }
        if (const auto it = cache.find(piece); it != cache.end()) {
            const Span span = it->second;
            for (uint32_t i = 0; i < span.count; ++i) out.push_back(out[span.first + i]);  // no iterators: push_back may reallocate
            return;
        }
        const size_t first = out.size();
        bpe(piece, out);
        if (cache.size() < kMaxCacheEntries)
            cache.emplace(piece, Span{static_cast<uint32_t>(first), static_cast<uint32_t>(out.size() - first)});
    };
    pre_tokenize_range(pre, text, 0, text.size(), emit);
}

void Tokenizer::Impl::encode_with_literals(std::string_view text, const std::vector<Literal>& literals,
                                           std::vector<int>& out) const {
    if (literals.empty()) {
        encode_plain(text, out);
        return;
    }
    std::array<bool, 256> starts_literal{};
    for (const Literal& l : literals) starts_literal[static_cast<unsigned char>(l.text[0])] = true;
    size_t segment = 0;
    for (size_t pos = 0; pos < text.size();) {
        const Literal* match = nullptr;
        if (starts_literal[static_cast<unsigned char>(text[pos])]) {
            for (const Literal& l : literals) {
                if (text.compare(pos, l.text.size(), l.text) == 0) {
                    match = &l;
                    break;
                }
            }
        }
        if (!match) {
            ++pos;
            continue;
        }
        encode_plain(text.substr(segment, pos - segment), out);
        out.push_back(match->id);
        pos += match->text.size();
        segment = pos;
    }
    encode_plain(text.substr(segment), out);
}

Tokenizer::Tokenizer(const Vocabulary& vocab) : impl_(new Impl) {
    std::unique_ptr<Impl> guard(impl_);  // released on success; frees impl_ if a check below throws
    Impl& m = *impl_;
    if (vocab.model != "gpt2")
        throw InputError("unsupported tokenizer model '" + vocab.model + "': only byte-level BPE (gpt2) is supported");
    m.pre = parse_pre_tokenizer(vocab.pre);
    if (vocab.tokens.empty()) throw InputError("tokenizer vocabulary is empty");
    if (!vocab.token_type.empty() && vocab.token_type.size() != vocab.tokens.size())
        throw InputError("tokenizer vocabulary has " + std::to_string(vocab.tokens.size()) + " tokens but " +
                         std::to_string(vocab.token_type.size()) + " token types");
    m.vocab_size = static_cast<int>(vocab.tokens.size());
    const auto in_range = [&](int id) { return id >= 0 && id < m.vocab_size; };
    m.bos = in_range(vocab.bos_id) ? vocab.bos_id : -1;
    m.eos = in_range(vocab.eos_id) ? vocab.eos_id : -1;

    std::unordered_map<std::string, int> id_of;
    id_of.reserve(vocab.tokens.size() * 2);
    m.token_bytes.resize(vocab.tokens.size());
    for (int id = 0; id < m.vocab_size; ++id) {
        const std::string& text = vocab.tokens[id];
        const int type = vocab.token_type.empty() ? 1 : vocab.token_type[id];
        const bool literal = type == kTypeControl || type == kTypeUserDefined || type == kTypeUnknown;
        // Control and user-defined tokens are written as plain UTF-8, not in the byte alphabet.
        m.token_bytes[id] = literal ? text : token_text_to_bytes(text);
        // On duplicate texts the later id wins, as in llama.cpp (our reference).
        if (!literal) id_of[text] = id;
        if ((type == kTypeControl || type == kTypeUserDefined) && !text.empty()) {
            m.user_defined_and_control.push_back({text, id});
            if (type == kTypeUserDefined) m.user_defined.push_back({text, id});
        }
    }
    for (auto* list : {&m.user_defined, &m.user_defined_and_control})
        std::stable_sort(list->begin(), list->end(),
                         [](const Impl::Literal& a, const Impl::Literal& b) { return a.text.size() > b.text.size(); });

    // Real byte-level vocabularies may lack tokens for bytes that never occur
    // in UTF-8 text (SmolLM2 has none for 0xC0, 0xC1, 0xF5..0xFF and a few C0
    // controls). Every byte that ordinary text is made of must be there, or
    // this is not a byte-level vocabulary at all.
    const auto required = [](int b) {
        return b == '\t' || b == '\n' || b == '\r' || (b >= 0x20 && b <= 0x7E) || (b >= 0x80 && b <= 0xBF) ||
               (b >= 0xC2 && b <= 0xF0);
    };
    for (int b = 0; b < 256; ++b) {
        const std::string text = bytes_to_token_text(std::string(1, static_cast<char>(b)));
        const auto it = id_of.find(text);
        m.byte_token[b] = it == id_of.end() ? -1 : it->second;
        if (m.byte_token[b] < 0 && required(b)) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", b);
            throw InputError(std::string("tokenizer vocabulary has no token for byte ") + hex + " ('" + text +
                             "'): not a byte-level BPE vocabulary");
        }
    }

    const auto symbol_of = [&](const std::string& text) {
        const auto [it, inserted] = id_of.try_emplace(text, m.vocab_size + static_cast<int>(m.extra_symbol_bytes.size()));
        if (inserted) m.extra_symbol_bytes.push_back(token_text_to_bytes(text));
        return it->second;
    };
    m.merges.reserve(vocab.merges.size());
    for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
        const auto& [left, right] = vocab.merges[rank];
        if (left.empty() || right.empty()) throw InputError("tokenizer merge " + std::to_string(rank) + " has an empty side");
        const int l = symbol_of(left);
        const int r = symbol_of(right);
        const int merged = symbol_of(left + right);
        m.merges.insert(pair_key(l, r), {static_cast<int>(rank), merged});
    }
    // The unknown token stands in only when it is one (type 2): SmolLM2
    // declares <|endoftext|> as its unk, and an end-of-text in the middle of a
    // prompt would change what the model does far more than a U+FFFD.
    const bool real_unknown = in_range(vocab.unk_id) &&
                              (vocab.token_type.empty() || vocab.token_type[vocab.unk_id] == kTypeUnknown);
    if (real_unknown) {
        m.unrepresentable = {vocab.unk_id};
    } else {
        m.bpe("\xEF\xBF\xBD", m.unrepresentable);  // U+FFFD, as llama.cpp writes bytes it cannot keep
    }
    guard.release();
}

Tokenizer::~Tokenizer() { delete impl_; }

Tokenizer::Tokenizer(Tokenizer&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Tokenizer& Tokenizer::operator=(Tokenizer&& other) noexcept {
    if (this != &other) {
        delete impl_;
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

std::vector<int> Tokenizer::encode(const std::string& text, bool add_bos) const {
    std::vector<int> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && impl_->bos >= 0) out.push_back(impl_->bos);
    impl_->encode_with_literals(text, impl_->user_defined, out);
    return out;
}

std::vector<int> Tokenizer::encode_with_special(const std::string& text, bool add_bos) const {
    std::vector<int> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && impl_->bos >= 0) out.push_back(impl_->bos);
    impl_->encode_with_literals(text, impl_->user_defined_and_control, out);
    return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
    std::string out;
    for (int id : ids) {
        if (id < 0 || id >= impl_->vocab_size) token_text(id);  // throws the out-of-range error
        out += impl_->token_bytes[id];
    }
    return out;
}

std::string Tokenizer::token_text(int id) const {
    if (id < 0 || id >= impl_->vocab_size)
        throw InputError("token id " + std::to_string(id) + " is out of range (vocabulary has " +
                         std::to_string(impl_->vocab_size) + " tokens)");
    return impl_->token_bytes[id];
}

int Tokenizer::size() const { return impl_->vocab_size; }
int Tokenizer::bos_id() const { return impl_->bos; }
int Tokenizer::eos_id() const { return impl_->eos; }

std::vector<std::string> pre_tokenize(const std::string& text, const std::string& pre) {
    const PreTokenizer kind = parse_pre_tokenizer(pre);
    std::vector<std::string> pieces;
    auto emit = [&](size_t begin, size_t end) { pieces.emplace_back(text, begin, end - begin); };
    pre_tokenize_range(kind, text, 0, text.size(), emit);
    return pieces;
}

}  // namespace msa
