#pragma once
// The run's whole document as its tokens, wrapped: the inspected query's
// selected blocks highlighted (its own block and the query token marked apart),
// block boundaries shaded, tokens it cannot see dimmed. Hover a token for its
// position and block; click it to inspect it as the query (heatmap and
// inspector follow). Only the visible lines are laid out.
#include <string>
#include <vector>

#include "viz/layout.h"
#include "viz/text_layout.h"

namespace msa::gui {

class App;

class TextView {
public:
    void draw(App& app, const viz::Rect& r);
    // What the last frame showed, for --screenshot-info.
    struct Placement {
        float x = 0, y = 0, w = 0, h = 0;  // the document area, window pixels
        int first_token = -1, last_token = -1;  // tokens on the visible lines
        bool drawn = false;
    };
    const Placement& placement() const { return placement_; }

private:
    void relayout(App& app, float width);
    void scroll_to_token(int t);
    void tooltip(App& app, int t, int block_state);

    // Layout cache, keyed on the document and the wrap width.
    const void* laid_out_for_ = nullptr;
    std::string laid_out_source_;
    bool reflow_ = true;  // hard-wrapped text reads as paragraphs (viz::Newlines::paragraphs)
    bool laid_out_reflow_ = true;
    float laid_out_width_ = -1;
    std::vector<viz::TextPiece> pieces_;
    viz::TextLines lines_;

    int followed_query_ = -2;  // the query the view last scrolled to (or that a click here set)
    int scroll_to_line_ = -1;  // pending scroll, applied inside the document child
    Placement placement_;
};

}  // namespace msa::gui
