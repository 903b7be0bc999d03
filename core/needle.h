#pragma once
// Quality studies on real text: the multi-needle document generator and the
// machinery that measures many MSA settings on one document.
//
// The document: a haystack of mundane sentences written by the program from
// templates and word lists, with N facts ("The secret word of the blue
// lighthouse is walnut.") planted at seeded random positions, then a question
// section that asks for each fact in order, each question followed by an
// answer prefix and the expected value. Because the answers are in the text,
// one forward over the document checks every answer: teacher-forced argmax at
// the value's positions is exactly what greedy decoding would emit after the
// prefix, token by token, for as long as it is right.
//
// The study: one dense forward whose attention hook computes the selections
// of every (k, scorer, sink, block) combination on the same Q/K/V (block
// scores shared across k and sink, dense block mass shared across scorers),
// then, optionally, one forward with MSA in every layer per combination for
// perplexity and answers.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/msa.h"
#include "core/run_result.h"
#include "core/tokenizer.h"

namespace msa {

class ComputeBackend;  // core/backend.h

// ---------------------------------------------------------------- documents

struct NeedleDocumentOptions {
    int target_tokens = 2048;  // total tokens (haystack + facts + questions), approximately, never above
    int n_needles = 12;        // 1 .. max_needles()
    uint64_t seed = 1;
    bool add_bos = false;      // prepend the tokenizer's BOS (positions then start after it)
};

int max_needles();  // distinct keys the word lists can make

// Token spans are [begin, end) in NeedleDocument::tokens.
struct PlantedFact {
    std::string key;            // "blue lighthouse"
    std::string value;          // "walnut"
    std::string sentence;       // "The secret word of the blue lighthouse is walnut."
    std::string question;       // "What is the secret word of the blue lighthouse?"
    std::string answer_prefix;  // "The secret word of the blue lighthouse is"
    int sentence_token_begin = 0, sentence_token_end = 0;
    int value_token_begin = 0, value_token_end = 0;    // the value inside the fact
    int answer_token_begin = 0, answer_token_end = 0;  // the expected answer after the prefix
    int question_token = 0;     // last token of the question's answer prefix
    int depth_percent = 0;      // where the fact sits in the haystack, 0..100
};

struct NeedleDocument {
    std::string text;
    std::vector<int> tokens;
    std::vector<PlantedFact> facts;  // in question order (= order of the facts in the text)
    std::vector<Needle> needles;     // one per fact: value span, question token
    int haystack_sentences = 0;
    int questions_token_begin = 0;   // first token of the question section
};

// Deterministic from (tokenizer, options). Throws InputError on bad options
// (no needles, too many, a target too small to hold the facts and questions).
NeedleDocument make_needle_document(const Tokenizer& tokenizer, const NeedleDocumentOptions& options);

// Per fact: whether the model's greedy continuation after the answer prefix
// starts with the expected value, read from a forward over the whole document
// (argmax[p - 1] == tokens[p] for every token p of the answer).
std::vector<bool> answers_correct(const NeedleDocument& document, const std::vector<int>& argmax);
int count_answers_correct(const NeedleDocument& document, const std::vector<int>& argmax);
// What the model predicted at the answer positions (teacher forced), for display.
std::string predicted_answer(const Tokenizer& tokenizer, const NeedleDocument& document, int fact,
                             const std::vector<int>& argmax);

// (hits, total) over (group, needle) pairs of one selection: a hit when any
// block overlapping the needle's tokens is kept at its question token.
struct HitCount {
    long hits = 0;
    long total = 0;
    double rate() const;  // NaN when total == 0
};
HitCount count_needle_hits(const Selection& selection, const std::vector<Needle>& needles, int block);

// ------------------------------------------------------------------- studies

struct StudyConfig {
    int k = 16;
    Scorer scorer = Scorer::max;
    int sink = 0;
    int block = 128;
};

struct StudyGrid {
    std::vector<int> ks;
    std::vector<Scorer> scorers;
    std::vector<int> sinks;
    std::vector<int> blocks;
    // Every combination, blocks outermost, then scorers, sinks, k (ascending as given).
    std::vector<StudyConfig> configs() const;
};

// Parses comma-separated lists ("2,4,8", "max,mean", "0,1", "64,128").
// Throws InputError (one line) on empty lists, non-numbers, k < 1, block < 1,
// sink outside {0,1}, unknown scorer names.
StudyGrid parse_study_grid(const std::string& k_list, const std::string& scorer_list, const std::string& sink_list,
                           const std::string& block_list);

// One warning per (k, sink) pair whose budget leaves no free slot (k <= forced).
std::vector<std::string> budget_warnings(const StudyGrid& grid);

struct StudyOptions {
    int threads = 1;
    bool recall = true;        // attention-mass recall per combination (dense block mass per block size)
    bool msa_forwards = true;  // one forward with MSA in every layer per combination: perplexity, answers
    std::vector<int> layers;   // layers whose selections are measured; empty = all
    IndexKind index = IndexKind::free;  // trained only for models with index weights
    uint64_t seed = 0x5eedull; // for the random scorer
    // Runs the forwards, the dense attention and the MSA layers (null = CPU).
    // Every combination's selection diagnostics stay on the CPU, on the Q/K/V
    // the dense forward's hook receives, whichever backend made them.
    const ComputeBackend* backend = nullptr;
    ProgressFn progress;       // fraction of the whole study; false = cancel
    // Called once the dense diagnostic forward is done, with its wall time and
    // the number of MSA forwards still to run (for an estimate of the rest).
    std::function<void(double dense_ms, int forwards_left)> on_dense_done;
};

struct StudyRow {
    StudyConfig config;
    double recall_mean = NAN;       // over analysed layers, queries and heads
    double needle_hit_rate = NAN;   // over analysed layers, groups and needles
    double perplexity = NAN;        // MSA in every layer
    int answers_correct = -1;       // -1 when not measured
    double forward_ms = NAN;
};

struct StudyResult {
    std::vector<StudyRow> rows;
    double dense_perplexity = NAN;
    int dense_answers_correct = -1;  // -1 without a needle document
    std::vector<int> dense_argmax;
    double dense_ms = 0;             // diagnostic forward, all combinations' selections included
    std::vector<StageTiming> timings;
};

// Analytic FLOPs of the study's parts (2 per multiply-add), for estimates
// and progress weights. The MSA forwards are counted with their sparse
// attention and index pass; everything else as in the dense forward.
struct StudyCost {
    double forward_flops = 0;               // one dense forward
    double diagnostic_flops = 0;            // dense forward + scoring and dense mass of every combination
    std::vector<double> msa_forward_flops;  // per combination, in grid.configs() order
    double total(bool msa_forwards) const;
};
StudyCost study_cost(const ModelConfig& config, int n_tokens, const StudyGrid& grid, const StudyOptions& options);

// Seconds the study will take here: times a dense forward over the first
// `probe_tokens` tokens and scales the analytic cost by the rate it reached.
double estimate_study_seconds(const Model& model, const std::vector<int>& tokens, const StudyGrid& grid,
                              const StudyOptions& options, int probe_tokens = 256);

// `document` may be null (plain text: no needle rate, no answers); when given,
// `tokens` must be document->tokens. Throws InputError when the grid is empty
// or a layer is out of range, std::runtime_error("cancelled") on cancel.
StudyResult run_quality_study(const Model& model, const std::vector<int>& tokens, const NeedleDocument* document,
                              const StudyGrid& grid, const StudyOptions& options);

}  // namespace msa
