#include "viz/figure.h"

#include <algorithm>

namespace msa::viz {

Image compose_figure(const std::vector<FigurePanel>& panels, const std::string& caption, int columns, int text_scale) {
    const int scale = std::max(1, text_scale);
    const int pad = 10, title_h = 16 * scale, caption_h = caption.empty() ? 0 : 18 * scale;
    const int per_row = columns > 0 ? columns : std::max<int>(1, static_cast<int>(panels.size()));
    std::vector<Image> legends;
    for (const FigurePanel& p : panels)
        legends.push_back(p.show_legend ? legend_with_labels(p.range, p.image.height, "") : Image());
    // Row sizes first: each row is as tall as its tallest panel.
    std::vector<int> row_heights;
    int width = 0;
    for (size_t first = 0; first < panels.size(); first += per_row) {
        int row_w = pad, row_h = 0;
        for (size_t i = first; i < std::min(panels.size(), first + per_row); ++i) {
            row_w += panels[i].image.width + legends[i].width + pad;
            row_h = std::max(row_h, panels[i].image.height);
        }
        width = std::max(width, row_w);
        row_heights.push_back(row_h);
    }
    int height = caption_h + 2 * pad;
    for (int h : row_heights) height += title_h + h;
    Image fig(std::max(width, 2 * pad), height, palette::background);
    if (caption_h) draw_text(fig, pad, pad / 2, caption, palette::text, scale);
    int y = pad + caption_h;
    for (size_t row = 0; row < row_heights.size(); ++row) {
        int x = pad;
        y += title_h;
        for (size_t i = row * per_row; i < std::min(panels.size(), (row + 1) * per_row); ++i) {
            draw_text(fig, x, y - title_h + 2, panels[i].title, palette::text, scale);
            fig.blit(panels[i].image, x, y);
            x += panels[i].image.width;
            if (!legends[i].empty()) fig.blit(legends[i], x, y);
            x += legends[i].width + pad;
        }
        y += row_heights[row];
    }
    return fig;
}

}  // namespace msa::viz
