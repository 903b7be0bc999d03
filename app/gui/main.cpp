// msascope: the desktop app. GLFW window + OpenGL 3 + Dear ImGui; all state in
// App, one file per view. With --screenshot it renders a few frames, writes the
// window as PNG and exits (how the GUI tests and the README images are made).
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>

#include <cfloat>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/gui/app.h"
#include "app/gui/options.h"
#include "app/gui/texture.h"
#include "core/errors.h"
#include "viz/image.h"

namespace {

void glfw_error(int code, const char* what) { std::fprintf(stderr, "msascope: GLFW error %d: %s\n", code, what); }

void setup_style() {
    ImGui::StyleColorsDark();
    ImGuiStyle& style = ImGui::GetStyle();
    style.WindowRounding = 0;
    style.FrameRounding = 2;
    style.WindowPadding = ImVec2(8, 6);
    style.ItemSpacing = ImVec2(6, 4);
    style.WindowBorderSize = 1;
    style.Colors[ImGuiCol_WindowBg] = ImVec4(0.105f, 0.105f, 0.12f, 1);
    style.Colors[ImGuiCol_TitleBg] = ImVec4(0.14f, 0.14f, 0.16f, 1);
    style.Colors[ImGuiCol_TitleBgActive] = ImVec4(0.18f, 0.18f, 0.21f, 1);
    style.Colors[ImGuiCol_Button] = ImVec4(0.22f, 0.24f, 0.30f, 1);
    style.Colors[ImGuiCol_ButtonHovered] = ImVec4(0.95f, 0.55f, 0.10f, 0.8f);
    style.Colors[ImGuiCol_ButtonActive] = ImVec4(0.95f, 0.55f, 0.10f, 1);
    style.Colors[ImGuiCol_SliderGrab] = ImVec4(0.95f, 0.55f, 0.10f, 1);
    style.Colors[ImGuiCol_CheckMark] = ImVec4(0.95f, 0.55f, 0.10f, 1);
    style.Colors[ImGuiCol_PlotHistogram] = ImVec4(0.95f, 0.55f, 0.10f, 1);
}

void load_font() {
    ImGuiIO& io = ImGui::GetIO();
    for (const char* path : {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                             "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"}) {
        std::error_code ec;
        if (std::filesystem::exists(path, ec) && io.Fonts->AddFontFromFileTTF(path, 14.0f)) return;
    }
    io.Fonts->AddFontDefault();
}

}  // namespace

int main(int argc, char** argv) {
    msa::gui::GuiOptions options = msa::gui::parse_options(argc, argv);
    const bool screenshot = !options.screenshot.empty();

    glfwSetErrorCallback(glfw_error);
    if (!glfwInit()) {
        std::fprintf(stderr, "msascope: cannot initialise GLFW (no display? try xvfb-run)\n");
        return 1;
    }
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
    GLFWwindow* window = glfwCreateWindow(options.width, options.height, "msascope", nullptr, nullptr);
    if (!window) {
        std::fprintf(stderr, "msascope: cannot open a %dx%d OpenGL 3 window\n", options.width, options.height);
        glfwTerminate();
        return 1;
    }
    glfwMakeContextCurrent(window);
    glfwSwapInterval(screenshot ? 0 : 1);

    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGui::GetIO().IniFilename = nullptr;  // the layout is computed, nothing to save
    setup_style();
    load_font();
    ImGui_ImplGlfw_InitForOpenGL(window, true);
    ImGui_ImplOpenGL3_Init("#version 130");

    int exit_code = 0;
    {
        std::unique_ptr<msa::gui::App> app;
        try {
            app = std::make_unique<msa::gui::App>(options);
        } catch (const msa::InputError& e) {
            std::fprintf(stderr, "msascope: %s\n", e.what());
            exit_code = 2;
        }
        for (int frame = 0; app && !glfwWindowShouldClose(window); ++frame) {
            if (screenshot) app->settle();  // screenshots show finished work, never a progress bar
            glfwPollEvents();
            ImGui_ImplOpenGL3_NewFrame();
            ImGui_ImplGlfw_NewFrame();
            // Screenshots show the views, not whatever the virtual pointer happens to hover.
            if (screenshot) ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
            ImGui::NewFrame();
            int fb_w, fb_h;
            glfwGetFramebufferSize(window, &fb_w, &fb_h);
            app->frame(fb_w, fb_h);
            ImGui::Render();
            glViewport(0, 0, fb_w, fb_h);
            glClearColor(0.07f, 0.07f, 0.08f, 1.0f);
            glClear(GL_COLOR_BUFFER_BIT);
            ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
            if (screenshot && frame + 1 >= std::max(2, options.frames)) {
                try {
                    msa::viz::write_png(msa::gui::read_framebuffer(fb_w, fb_h), options.screenshot);
                    std::fprintf(stderr, "msascope: wrote %s (%dx%d)\n", options.screenshot.c_str(), fb_w, fb_h);
                    if (!options.screenshot_info.empty()) {
                        std::ofstream info(options.screenshot_info);
                        info << app->screenshot_info() << "\n";
                    }
                    if (!app->status().empty()) std::fprintf(stderr, "msascope: status: %s\n", app->status().c_str());
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "msascope: %s\n", e.what());
                    exit_code = 1;
                }
                break;
            }
            glfwSwapBuffers(window);
        }
    }
    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
    glfwDestroyWindow(window);
    glfwTerminate();
    return exit_code;
}
