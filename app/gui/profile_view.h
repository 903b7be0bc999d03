#pragma once
// What the run cost: kernel statistics (CUPTI records), a timeline, dense vs
// sparse time, and the analytic FLOPs model over context with this run's
// measured points. CPU runs have no kernels: the stage timings stand in. A
// bench run shows its kernels per context, its rows, and its measured time
// ratios beside the analytic curve.
#include "core/run_result.h"
#include "sessions/bench_run.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class ProfileView {
public:
    void draw(App& app, const viz::Rect& r);

private:
    void kernel_table(App& app, const RunResult& run, float height);
    void timeline(App& app, const RunResult& run, float height);
    void dense_vs_sparse(const RunResult& run, float width, float height);
    void bench_rows(const sessions::BenchRun& bench, float width, float height);  // a bench run's tables
    void flops_curve(App& app, float width, float height);
};

}  // namespace msa::gui
