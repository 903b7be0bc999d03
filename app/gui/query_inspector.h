#pragma once
// One query up close: its block scores as bars (selected ones marked), the
// dense mass of the group on each block, its recall, and the text of its best
// blocks with the selected ones highlighted.
#include "viz/layout.h"

namespace msa::gui {

class App;

class QueryInspector {
public:
    void draw(App& app, const viz::Rect& r);
};

}  // namespace msa::gui
