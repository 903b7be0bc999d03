#include "viz/text_layout.h"

#include <algorithm>

namespace msa::viz {

std::vector<TextPiece> split_tokens(const std::vector<std::string>& tokens,
                                    const std::function<float(const std::string&)>& width_of, Newlines newlines) {
    // The whole text, to look across token boundaries: a newline is alone
    // when the nearest characters either side of it (carriage returns aside)
    // are not newlines, and the line after it is not indented (code, lists).
    std::string all;
    std::vector<size_t> start(tokens.size());
    for (size_t t = 0; t < tokens.size(); ++t) start[t] = all.size(), all += tokens[t];
    auto alone = [&all](size_t at) {
        size_t before = at, after = at + 1;
        while (before > 0 && all[before - 1] == '\r') --before;
        while (after < all.size() && all[after] == '\r') ++after;
        const char next = after < all.size() ? all[after] : '\0';
        return (before == 0 || all[before - 1] != '\n') && next != '\n' && next != ' ' && next != '\t';
    };
    std::vector<TextPiece> pieces;
    pieces.reserve(tokens.size());
    auto finish = [&](TextPiece& p) {
        p.width = width_of(p.text);
        const size_t spaces = p.text.find_first_not_of(' ');
        p.lead = spaces == 0 ? 0.f : width_of(p.text.substr(0, spaces == std::string::npos ? p.text.size() : spaces));
        pieces.push_back(std::move(p));
        p = TextPiece();
    };
    for (size_t t = 0; t < tokens.size(); ++t) {
        TextPiece p;
        p.token = static_cast<int>(t);
        for (size_t i = 0; i < tokens[t].size(); ++i) {
            const unsigned char c = tokens[t][i];
            if (c == '\n' && newlines == Newlines::paragraphs && alone(start[t] + i)) {
                p.text += ' ';
            } else if (c == '\n') {
                p.newline_after = true;
                finish(p);
                p.token = static_cast<int>(t);
            } else if (c == '\t') {
                p.text += "    ";
            } else if (c == '\r') {
                continue;
            } else {
                p.text += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
            }
        }
        // A token that ends with its newline has no piece after it.
        if (!p.text.empty() || pieces.empty() || pieces.back().token != static_cast<int>(t)) finish(p);
    }
    return pieces;
}

TextLines wrap_pieces(std::vector<TextPiece>& pieces, float width) {
    TextLines lines;
    const size_t n = pieces.size();
    // Words are made of several tokens: a line breaks where a space is, not inside a word.
    auto can_break_before = [&pieces](size_t i) {
        const std::string &here = pieces[i].text, &before = pieces[i - 1].text;
        return here.empty() || here.front() == ' ' || (!before.empty() && before.back() == ' ');
    };
    lines.first_piece.push_back(0);
    size_t line_start = 0;
    bool soft = false;  // the line began at a wrap, not a newline: its leading space hangs left of the margin
    float x = 0;
    auto place = [&](size_t i) {
        pieces[i].x = i == line_start && soft ? -pieces[i].lead : x;
        x = pieces[i].x + pieces[i].width;
    };
    for (size_t i = 0; i < n; ++i) {
        if (i > line_start && x + pieces[i].width > width) {
            size_t j = i;
            while (j > line_start && !can_break_before(j)) --j;
            if (j == line_start) j = i;  // a word longer than the line: break inside it
            lines.first_piece.push_back(static_cast<int>(j));
            line_start = j;
            soft = true;
            x = 0;
            for (size_t k = j; k < i; ++k) place(k);  // the start of the word moves down with it
        }
        place(i);
        if (pieces[i].newline_after && i + 1 < n) {
            lines.first_piece.push_back(static_cast<int>(i + 1));
            line_start = i + 1;
            soft = false;
            x = 0;
        }
    }
    if (n > 0) lines.first_piece.push_back(static_cast<int>(n));
    return lines;
}

int line_of_token(const std::vector<TextPiece>& pieces, const TextLines& lines, int t) {
    const auto piece = std::lower_bound(pieces.begin(), pieces.end(), t,
                                        [](const TextPiece& p, int token) { return p.token < token; });
    if (piece == pieces.end() || lines.count() == 0) return std::max(0, lines.count() - 1);
    const int index = static_cast<int>(piece - pieces.begin());
    // The last line whose first piece is at or before it.
    const auto line = std::upper_bound(lines.first_piece.begin(), lines.first_piece.end() - 1, index);
    return std::max(0, static_cast<int>(line - lines.first_piece.begin()) - 1);
}

}  // namespace msa::viz
