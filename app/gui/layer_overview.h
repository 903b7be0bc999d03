#pragma once
// Recall and output error for every analysed layer, one small chart per GQA
// group plus one for the error: where does this budget lose attention? Click a
// bar to show that layer and group.
#include "viz/layout.h"

namespace msa::gui {

class App;

class LayerOverview {
public:
    void draw(App& app, const viz::Rect& r);
};

}  // namespace msa::gui
