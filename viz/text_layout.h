#pragma once
// A run's document as wrapped lines of tokens, window-free: the text view lays
// out only the lines it shows (8K tokens stay fluid), and tests can check the
// wrapping with a stand-in for the font's measure.
#include <functional>
#include <string>
#include <vector>

namespace msa::viz {

// A token's text up to a newline: a token holding newlines is several pieces.
struct TextPiece {
    int token = 0;
    std::string text;            // printable: tabs as spaces, control characters as '?', no newlines
    float width = 0;             // of text
    float lead = 0;              // width of text's leading spaces (dropped at the start of a wrapped line)
    bool newline_after = false;  // the token's text breaks the line after this piece
    float x = 0;                 // set by wrap_pieces: left edge on its line (may be -lead)
};

// Pieces of tokens[0..n), measured with width_of. Newlines::paragraphs
// reflows hard-wrapped text: a newline alone (no newline right before or after
// it in the text, no indented line after it) reads as a space; blank lines and
// indented lines still break.
enum class Newlines { keep, paragraphs };
std::vector<TextPiece> split_tokens(const std::vector<std::string>& tokens,
                                    const std::function<float(const std::string&)>& width_of,
                                    Newlines newlines = Newlines::keep);

struct TextLines {
    std::vector<int> first_piece;  // per line, its first piece; a last entry = pieces.size()
    int count() const { return first_piece.empty() ? 0 : static_cast<int>(first_piece.size()) - 1; }
};

// Breaks pieces into lines of at most `width` (a piece wider than a line gets
// one of its own), at newlines and between pieces; sets each piece's x.
TextLines wrap_pieces(std::vector<TextPiece>& pieces, float width);

// The line holding the first piece of token t (pieces in token order); 0 when none.
int line_of_token(const std::vector<TextPiece>& pieces, const TextLines& lines, int t);

}  // namespace msa::viz
