#pragma once
// Layer, group, head and the MSA budget. k and sink re-select live from the
// cached block scores; the scorer and block size re-pool from Q/K/V when the
// run kept them (otherwise the panel says why it cannot).
#include "viz/layout.h"

namespace msa::gui {

class App;

class ControlsPanel {
public:
    void draw(App& app, const viz::Rect& r);
};

}  // namespace msa::gui
