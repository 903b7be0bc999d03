#include "viz/figure.h"

#include <algorithm>

namespace msa::viz {

Image compose_figure(const std::vector<FigurePanel>& panels, const std::string& caption) {
    const int pad = 10, title_h = 16, caption_h = caption.empty() ? 0 : 18;
    int width = pad, height = 0;
    std::vector<Image> legends;
    for (const FigurePanel& p : panels) {
        legends.push_back(p.show_legend ? legend_with_labels(p.range, p.image.height, "") : Image());
        width += p.image.width + legends.back().width + pad;
        height = std::max(height, p.image.height);
    }
    Image fig(width, height + title_h + caption_h + 2 * pad, palette::background);
    if (caption_h) draw_text(fig, pad, pad / 2, caption, palette::text);
    int x = pad, y = pad + caption_h + title_h;
    for (size_t i = 0; i < panels.size(); ++i) {
        draw_text(fig, x, y - title_h + 2, panels[i].title, palette::text);
        fig.blit(panels[i].image, x, y);
        x += panels[i].image.width;
        if (!legends[i].empty()) fig.blit(legends[i], x, y);
        x += legends[i].width + pad;
    }
    return fig;
}

}  // namespace msa::viz
