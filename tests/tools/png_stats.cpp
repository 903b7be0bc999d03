// Pixel assertions on an app screenshot, for the GUI tests (tests/gui/screenshots.sh):
//   png_stats FILE [--rect x0,y0,x1,y1] [--min-stddev S] [--colour r,g,b --min-count N]
// The rectangle is in fractions of the image. Exit 0 when every assertion
// holds, 1 with one line saying which failed.
#include <stb_image.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: png_stats FILE [--rect x0,y0,x1,y1] [--min-stddev S] [--colour r,g,b --min-count N]\n");
        return 2;
    }
    double x0 = 0, y0 = 0, x1 = 1, y1 = 1, min_stddev = -1;
    int cr = -1, cg = -1, cb = -1;
    long min_count = -1;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--rect") std::sscanf(argv[i + 1], "%lf,%lf,%lf,%lf", &x0, &y0, &x1, &y1);
        else if (flag == "--min-stddev") min_stddev = std::atof(argv[i + 1]);
        else if (flag == "--colour") std::sscanf(argv[i + 1], "%d,%d,%d", &cr, &cg, &cb);
        else if (flag == "--min-count") min_count = std::atol(argv[i + 1]);
        else { std::fprintf(stderr, "png_stats: unknown flag %s\n", flag.c_str()); return 2; }
    }
    int w = 0, h = 0, channels = 0;
    unsigned char* pixels = stbi_load(argv[1], &w, &h, &channels, 4);
    if (!pixels) {
        std::fprintf(stderr, "png_stats: cannot read %s\n", argv[1]);
        return 1;
    }
    const int px0 = static_cast<int>(x0 * w), px1 = static_cast<int>(x1 * w);
    const int py0 = static_cast<int>(y0 * h), py1 = static_cast<int>(y1 * h);
    double sum = 0, sum2 = 0;
    long n = 0, count = 0;
    for (int y = py0; y < py1; ++y)
        for (int x = px0; x < px1; ++x) {
            const unsigned char* p = pixels + (static_cast<size_t>(y) * w + x) * 4;
            const double luma = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            sum += luma;
            sum2 += luma * luma;
            ++n;
            if (p[0] == cr && p[1] == cg && p[2] == cb) ++count;
        }
    stbi_image_free(pixels);
    const double mean = n ? sum / n : 0;
    const double stddev = n ? std::sqrt(std::max(0.0, sum2 / n - mean * mean)) : 0;
    std::printf("%s %dx%d rect [%d,%d)-[%d,%d): luma stddev %.1f, colour count %ld\n", argv[1], w, h, px0, py0, px1,
                py1, stddev, count);
    if (min_stddev >= 0 && stddev < min_stddev) {
        std::fprintf(stderr, "png_stats: %s looks blank in the rectangle (stddev %.1f < %.1f)\n", argv[1], stddev, min_stddev);
        return 1;
    }
    if (min_count >= 0 && count < min_count) {
        std::fprintf(stderr, "png_stats: %s has %ld pixels of colour %d,%d,%d in the rectangle (< %ld)\n", argv[1], count,
                     cr, cg, cb, min_count);
        return 1;
    }
    return 0;
}
