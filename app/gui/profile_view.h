#pragma once
// What the run cost: kernel statistics (CUPTI records), a timeline, dense vs
// sparse time, and the analytic FLOPs model over context with this run's
// measured points. CPU runs have no kernels: the stage timings stand in.
#include "core/run_result.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class ProfileView {
public:
    void draw(App& app, const viz::Rect& r);

private:
    void kernel_table(const RunResult& run, float height);
    void timeline(const RunResult& run, float height);
    void dense_vs_sparse(const RunResult& run, float width, float height);
    void flops_curve(App& app, float width, float height);
};

}  // namespace msa::gui
