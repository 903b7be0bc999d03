#include "app/gui/document.h"

#include <filesystem>

#include "core/model.h"
#include "core/tokenizer.h"
#include "sessions/session.h"
#include "viz/synthetic_attention.h"

namespace msa::gui {

std::string Document::token(int t) const {
    if (!run || t < 0 || t >= static_cast<int>(run->tokens.size())) return "";
    if (t < static_cast<int>(token_text.size()) && !token_text[t].empty()) return token_text[t];
    return "[" + std::to_string(run->tokens[t]) + "]";
}

std::string Document::token_on_one_line(int t) const {
    std::string out;
    for (char c : token(t)) {
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else out += c;
    }
    return out;
}

std::string Document::text(int begin, int end, size_t max_chars) const {
    std::string out;
    for (int t = std::max(0, begin); t < end && out.size() < max_chars; ++t) out += token(t);
    for (char& c : out)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
    return out;
}

std::vector<std::string> token_texts_for(const RunResult& run) {
    std::vector<std::string> texts(run.tokens.size());
    if (run.model_format == "synthetic") {
        for (size_t i = 0; i < run.tokens.size(); ++i) texts[i] = viz::synthetic_token_text(run.tokens[i]);
        return texts;
    }
    std::error_code ec;
    if (run.model_path.empty() || !std::filesystem::exists(run.model_path, ec)) return texts;
    try {
        Tokenizer tokenizer(load_vocabulary(run.model_path));
        for (size_t i = 0; i < run.tokens.size(); ++i) texts[i] = tokenizer.token_text(run.tokens[i]);
    } catch (const std::exception&) {
        // An unreadable or unsupported vocabulary only costs the token texts.
    }
    return texts;
}

Document load_session_document(const std::string& path, long long run_id) {
    sessions::Reader reader(path);
    int64_t id = run_id >= 0 ? run_id : reader.last_run();
    Document doc;
    auto run = std::make_shared<RunResult>(reader.load_run(id, true));
    doc.token_text = token_texts_for(*run);
    doc.run = std::move(run);
    doc.source = path + ":" + std::to_string(id);
    doc.session_path = path;
    doc.session_run = id;
    const std::string kind = reader.summary(id).kind;
    if (viz::is_study_kind(kind)) doc.study = viz::load_study_table(reader, id);
    if (kind == "bench") doc.bench = sessions::load_bench_run(reader, id);
    return doc;
}

Document synthetic_document(int n_tokens, const MsaConfig& config, int threads, const ProgressFn& progress,
                            const std::string& save_to) {
    viz::SyntheticOptions options;
    options.n_tokens = n_tokens;
    options.config = config;
    options.threads = threads;
    options.progress = progress;
    Document doc;
    auto run = std::make_shared<RunResult>(viz::synthetic_run(options));
    if (!save_to.empty()) {
        sessions::Writer writer(save_to);
        writer.write_run(*run);
    }
    doc.token_text = token_texts_for(*run);
    doc.run = std::move(run);
    doc.source = "synthetic attention, " + std::to_string(n_tokens) + " tokens";
    return doc;
}

}  // namespace msa::gui

#include <fstream>
#include <sstream>

#include "core/analysis.h"
#include "core/needle.h"
#include "core/errors.h"

namespace msa::gui {

Document model_run_document(const ModelRunRequest& request, const ProgressFn& progress) {
    std::string text;
    if (request.text_path.empty() == (request.needles <= 0))
        throw InputError("give a text file or a number of needles (one of them)");
    if (!request.text_path.empty()) {
        std::ifstream in(request.text_path, std::ios::binary);
        if (!in) throw InputError(request.text_path + ": cannot open the text file");
        std::stringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
    }
    if (progress && !progress(0.0, "loading model")) throw std::runtime_error("cancelled");
    Model model = load_model(request.model_path);
    Tokenizer tokenizer(model.vocab);
    std::vector<int> tokens;
    std::vector<Needle> needles;
    if (request.needles > 0) {
        NeedleDocumentOptions o;
        o.target_tokens = request.max_tokens;
        o.n_needles = request.needles;
        o.seed = request.seed;
        o.add_bos = model.vocab.add_bos;
        NeedleDocument generated = make_needle_document(tokenizer, o);
        tokens = std::move(generated.tokens);
        needles = std::move(generated.needles);
    } else {
        tokens = tokenizer.encode(text, model.vocab.add_bos);
        if (static_cast<int>(tokens.size()) > request.max_tokens) tokens.resize(request.max_tokens);
        if (tokens.size() < 2) throw InputError(request.text_path + ": the text has fewer than 2 tokens");
    }

    AnalysisOptions options;
    options.config = request.config;
    options.threads = request.threads;
    options.perplexity = request.perplexity;
    options.random_control = request.perplexity;
    options.capture = CaptureLevel::full;
    options.progress = progress;
    options.needles = needles;
    auto run = std::make_shared<RunResult>(analyze(model, tokens, tokenizer.decode(tokens), options));
    if (!request.save_to.empty()) {
        sessions::Writer writer(request.save_to);
        writer.write_run(*run);
    }
    Document doc;
    doc.token_text.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) doc.token_text[i] = tokenizer.token_text(tokens[i]);
    doc.run = std::move(run);
    doc.source = request.model_path + " + " +
                 (request.needles > 0 ? std::to_string(request.needles) + "-needle document" : request.text_path);
    return doc;
}

}  // namespace msa::gui
