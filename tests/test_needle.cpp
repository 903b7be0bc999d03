// The multi-needle document generator (determinism, exact token spans,
// distinct keys, questions at the end), the answer and hit-rate checks, the
// study grid parsing and budget warnings, and the quality study against
// analyze() on a tiny random model. The CLI's exit codes and the no-free-slot
// warning are checked through the built msascope-cli when it is there.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/analysis.h"
#include "core/errors.h"
#include "core/model.h"
#include "core/needle.h"
#include "core/tokenizer.h"
#include "support/tiny_model.h"

namespace {

using namespace msa;

bool file_exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \n");
    size_t e = s.find_last_not_of(" \n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string decode_span(const Tokenizer& tokenizer, const std::vector<int>& tokens, int begin, int end) {
    return tokenizer.decode(std::vector<int>(tokens.begin() + begin, tokens.begin() + end));
}

size_t count_occurrences(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Everything a document must satisfy, whatever the tokenizer.
void check_document(const Tokenizer& tokenizer, const NeedleDocument& doc, const NeedleDocumentOptions& options) {
    SCOPED_TRACE("seed " + std::to_string(options.seed) + ", " + std::to_string(options.n_needles) + " needles, " +
                 std::to_string(options.target_tokens) + " tokens");
    // Re-tokenizing the whole text gives exactly the recorded ids.
    EXPECT_EQ(tokenizer.encode(doc.text, options.add_bos), doc.tokens);
    EXPECT_LE(static_cast<int>(doc.tokens.size()), options.target_tokens);
    EXPECT_GE(static_cast<int>(doc.tokens.size()), options.target_tokens * 9 / 10);
    ASSERT_EQ(static_cast<int>(doc.facts.size()), options.n_needles);
    ASSERT_EQ(doc.needles.size(), doc.facts.size());

    std::set<std::string> keys, values, key_words;
    int previous_sentence_end = 0, previous_question = -1;
    size_t previous_question_char = doc.text.find("Answer from the text above.");
    ASSERT_NE(previous_question_char, std::string::npos);
    for (size_t i = 0; i < doc.facts.size(); ++i) {
        const PlantedFact& f = doc.facts[i];
        SCOPED_TRACE("fact " + std::to_string(i) + " " + f.key);
        EXPECT_TRUE(keys.insert(f.key).second) << "duplicate key";
        EXPECT_TRUE(values.insert(f.value).second) << "duplicate value";
        // No word shared between two keys either.
        std::istringstream words(f.key);
        for (std::string w; words >> w;) EXPECT_TRUE(key_words.insert(w).second) << "key word reused: " << w;

        // The spans decode to the fact, its value and the expected answer.
        EXPECT_EQ(trim(decode_span(tokenizer, doc.tokens, f.sentence_token_begin, f.sentence_token_end)), f.sentence);
        EXPECT_EQ(trim(decode_span(tokenizer, doc.tokens, f.value_token_begin, f.value_token_end)), f.value);
        EXPECT_EQ(decode_span(tokenizer, doc.tokens, f.answer_token_begin, f.answer_token_end), " " + f.value);
        EXPECT_NE(f.sentence.find(f.key), std::string::npos);
        EXPECT_NE(f.sentence.find(f.value), std::string::npos);
        // The value lies inside its fact sentence.
        EXPECT_GE(f.value_token_begin, f.sentence_token_begin);
        EXPECT_LE(f.value_token_end, f.sentence_token_end);
        // The question token is the last token of the answer prefix: the text
        // up to it ends with the question and the prefix.
        EXPECT_EQ(f.question_token, f.answer_token_begin - 1);
        const std::string upto = tokenizer.decode(
            std::vector<int>(doc.tokens.begin() + (options.add_bos ? 1 : 0), doc.tokens.begin() + f.question_token + 1));
        const std::string tail = f.question + " A: " + f.answer_prefix;
        ASSERT_GE(upto.size(), tail.size());
        EXPECT_EQ(upto.substr(upto.size() - tail.size()), tail);

        // Needle record = value span + question token.
        EXPECT_EQ(doc.needles[i].key, f.key);
        EXPECT_EQ(doc.needles[i].value, f.value);
        EXPECT_EQ(doc.needles[i].token_begin, f.value_token_begin);
        EXPECT_EQ(doc.needles[i].token_end, f.value_token_end);
        EXPECT_EQ(doc.needles[i].question_token, f.question_token);

        // Facts in the haystack, in order; questions after all of them, in the same order.
        EXPECT_GE(f.sentence_token_begin, previous_sentence_end);
        previous_sentence_end = f.sentence_token_end;
        EXPECT_LT(f.sentence_token_end, doc.questions_token_begin);
        EXPECT_GT(f.question_token, previous_question);
        EXPECT_GE(f.question_token, doc.questions_token_begin);
        previous_question = f.question_token;
        size_t question_char = doc.text.find(f.question);
        ASSERT_NE(question_char, std::string::npos);
        EXPECT_GT(question_char, previous_question_char);
        previous_question_char = question_char;
        EXPECT_GE(f.depth_percent, 0);
        EXPECT_LE(f.depth_percent, 100);
    }
    // The key phrase appears only in facts, questions and answer prefixes.
    EXPECT_EQ(count_occurrences(doc.text, "secret word"), 3 * doc.facts.size());
    // The last answer ends the document.
    const std::string ending = " " + doc.facts.back().value + ".\n";
    ASSERT_GE(doc.text.size(), ending.size());
    EXPECT_EQ(doc.text.substr(doc.text.size() - ending.size()), ending);
}

class ByteTokenizerTest : public ::testing::Test {
protected:
    Vocabulary vocab = make_byte_vocabulary(320);
    Tokenizer tokenizer{vocab};
};

TEST_F(ByteTokenizerTest, DocumentHasExactSpansAndQuestionsInOrder) {
    for (uint64_t seed : {1ull, 2ull, 77ull}) {
        for (int needles : {1, 4, 12}) {
            NeedleDocumentOptions o;
            o.seed = seed;
            o.n_needles = needles;
            o.target_tokens = 6000;
            NeedleDocument doc = make_needle_document(tokenizer, o);
            check_document(tokenizer, doc, o);
        }
    }
}

TEST_F(ByteTokenizerTest, BosShiftsEveryPosition) {
    NeedleDocumentOptions o;
    o.n_needles = 3;
    o.target_tokens = 3000;
    NeedleDocument plain = make_needle_document(tokenizer, o);
    o.add_bos = true;
    NeedleDocument with_bos = make_needle_document(tokenizer, o);
    ASSERT_GE(tokenizer.bos_id(), 0);
    EXPECT_EQ(with_bos.tokens.front(), tokenizer.bos_id());
    check_document(tokenizer, with_bos, o);
    if (with_bos.text == plain.text) {
        for (size_t i = 0; i < plain.needles.size(); ++i) {
            EXPECT_EQ(with_bos.needles[i].token_begin, plain.needles[i].token_begin + 1);
            EXPECT_EQ(with_bos.needles[i].question_token, plain.needles[i].question_token + 1);
        }
    }
}

TEST_F(ByteTokenizerTest, DeterministicFromTheSeed) {
    NeedleDocumentOptions o;
    o.n_needles = 6;
    o.target_tokens = 4000;
    o.seed = 123;
    NeedleDocument a = make_needle_document(tokenizer, o);
    NeedleDocument b = make_needle_document(tokenizer, o);
    EXPECT_EQ(a.text, b.text);
    EXPECT_EQ(a.tokens, b.tokens);
    ASSERT_EQ(a.facts.size(), b.facts.size());
    for (size_t i = 0; i < a.facts.size(); ++i) {
        EXPECT_EQ(a.facts[i].key, b.facts[i].key);
        EXPECT_EQ(a.facts[i].value, b.facts[i].value);
        EXPECT_EQ(a.needles[i].question_token, b.needles[i].question_token);
    }
    o.seed = 124;
    NeedleDocument c = make_needle_document(tokenizer, o);
    EXPECT_NE(a.text, c.text);
    std::set<std::string> keys_a, keys_c;
    for (const auto& f : a.facts) keys_a.insert(f.key + "=" + f.value);
    for (const auto& f : c.facts) keys_c.insert(f.key + "=" + f.value);
    EXPECT_NE(keys_a, keys_c);
}

TEST_F(ByteTokenizerTest, HaystackIsVariedSentences) {
    NeedleDocumentOptions o;
    o.n_needles = 2;
    o.target_tokens = 8000;
    NeedleDocument doc = make_needle_document(tokenizer, o);
    // Split the haystack into sentences: many, mostly distinct, capitalized, ending in '.'.
    const std::string haystack = doc.text.substr(0, doc.text.find("\n\nAnswer from the text above."));
    std::set<std::string> distinct;
    int sentences = 0;
    size_t start = 0;
    while (start < haystack.size()) {
        size_t end = haystack.find('.', start);
        if (end == std::string::npos) break;
        std::string sentence = trim(haystack.substr(start, end - start + 1));
        start = end + 1;
        ASSERT_FALSE(sentence.empty());
        EXPECT_TRUE(sentence[0] >= 'A' && sentence[0] <= 'Z') << sentence;
        distinct.insert(sentence);
        ++sentences;
    }
    EXPECT_EQ(sentences, doc.haystack_sentences + o.n_needles);
    EXPECT_GT(sentences, 100);
    EXPECT_GT(distinct.size(), sentences * 95 / 100) << "the haystack repeats itself";
    EXPECT_NE(haystack.find("\n\n"), std::string::npos) << "no paragraphs";
}

TEST_F(ByteTokenizerTest, RejectsImpossibleOptions) {
    NeedleDocumentOptions o;
    o.n_needles = 0;
    EXPECT_THROW(make_needle_document(tokenizer, o), InputError);
    o.n_needles = max_needles() + 1;
    EXPECT_THROW(make_needle_document(tokenizer, o), InputError);
    o.n_needles = 12;
    o.target_tokens = 200;  // the questions alone take more
    EXPECT_THROW(make_needle_document(tokenizer, o), InputError);
    o.n_needles = max_needles();
    o.target_tokens = 20000;
    EXPECT_NO_THROW(make_needle_document(tokenizer, o));
}

TEST_F(ByteTokenizerTest, AnswersReadFromArgmax) {
    NeedleDocumentOptions o;
    o.n_needles = 5;
    o.target_tokens = 3000;
    NeedleDocument doc = make_needle_document(tokenizer, o);
    // A perfect predictor: argmax[t] = tokens[t + 1].
    std::vector<int> argmax(doc.tokens.size(), 0);
    for (size_t t = 0; t + 1 < doc.tokens.size(); ++t) argmax[t] = doc.tokens[t + 1];
    EXPECT_EQ(count_answers_correct(doc, argmax), 5);
    EXPECT_EQ(predicted_answer(tokenizer, doc, 2, argmax), " " + doc.facts[2].value);
    // Break the last token of answer 1 and the first of answer 3.
    const PlantedFact& f1 = doc.facts[1];
    argmax[f1.answer_token_end - 2] = (argmax[f1.answer_token_end - 2] + 1) % 256;
    argmax[doc.facts[3].question_token] = (argmax[doc.facts[3].question_token] + 1) % 256;
    std::vector<bool> correct = answers_correct(doc, argmax);
    EXPECT_EQ(correct, (std::vector<bool>{true, false, true, false, true}));
    EXPECT_EQ(count_answers_correct(doc, argmax), 3);
    // An argmax everywhere wrong, or too short, gets nothing right.
    EXPECT_EQ(count_answers_correct(doc, std::vector<int>(doc.tokens.size(), -1)), 0);
    EXPECT_EQ(count_answers_correct(doc, std::vector<int>(10, 0)), 0);
}

TEST(NeedleHits, CountsOnAConstructedSelection) {
    // 10 tokens, 2 groups, 3 slots, block 2.
    Selection sel;
    sel.n_tokens = 10;
    sel.n_groups = 2;
    sel.slots = 3;
    sel.blocks.assign(10 * 2 * 3, -1);
    auto set_row = [&](int t, int g, std::vector<int> ids) {
        for (size_t i = 0; i < ids.size(); ++i) sel.row(t, g)[i] = ids[i];
    };
    set_row(9, 0, {0, 2, 4});
    set_row(9, 1, {1, 4});
    set_row(8, 0, {3, 4});
    set_row(8, 1, {0, 1, 4});
    std::vector<Needle> needles(3);
    needles[0].token_begin = 1;  // block 0
    needles[0].token_end = 2;
    needles[0].question_token = 9;  // group 0 keeps block 0, group 1 does not
    needles[1].token_begin = 5;  // tokens 5..6 = blocks 2..3
    needles[1].token_end = 7;
    needles[1].question_token = 8;  // group 0 keeps block 3, group 1 neither
    needles[2].token_begin = 2;  // block 1
    needles[2].token_end = 4;
    needles[2].question_token = 12;  // out of range: not counted
    HitCount h = count_needle_hits(sel, needles, 2);
    EXPECT_EQ(h.total, 4);
    EXPECT_EQ(h.hits, 2);
    EXPECT_DOUBLE_EQ(h.rate(), 0.5);
    // analyze()'s own hit rate agrees on the same selection.
    LayerCapture capture;
    capture.selection = sel;
    EXPECT_DOUBLE_EQ(needle_hit_rate({capture}, needles, 2), 0.5);
    EXPECT_TRUE(std::isnan(count_needle_hits(sel, {needles[2]}, 2).rate()));
}

TEST(StudyGrid, ParsesListsAndRejectsBadValues) {
    StudyGrid g = parse_study_grid("2, 4,8", "max,random", "0,1", "64,128");
    EXPECT_EQ(g.ks, (std::vector<int>{2, 4, 8}));
    EXPECT_EQ(g.scorers, (std::vector<Scorer>{Scorer::max, Scorer::random}));
    EXPECT_EQ(g.sinks, (std::vector<int>{0, 1}));
    EXPECT_EQ(g.blocks, (std::vector<int>{64, 128}));
    auto configs = g.configs();
    ASSERT_EQ(configs.size(), 3u * 2 * 2 * 2);
    EXPECT_EQ(configs[0].k, 2);
    EXPECT_EQ(configs[0].block, 64);
    EXPECT_EQ(configs[1].k, 4);
    EXPECT_EQ(configs.back().k, 8);
    EXPECT_EQ(configs.back().block, 128);
    EXPECT_EQ(configs.back().scorer, Scorer::random);
    EXPECT_EQ(configs.back().sink, 1);
    // Duplicates collapse.
    EXPECT_EQ(parse_study_grid("4,4", "max,max", "0", "128").configs().size(), 1u);

    for (auto bad : std::vector<std::vector<std::string>>{{"0", "max", "0", "128"},
                                                          {"-3", "max", "0", "128"},
                                                          {"2,,4", "max", "0", "128"},
                                                          {"", "max", "0", "128"},
                                                          {"4x", "max", "0", "128"},
                                                          {"99999999999", "max", "0", "128"},
                                                          {"4", "maximum", "0", "128"},
                                                          {"4", "max", "2", "128"},
                                                          {"4", "max", "-1", "128"},
                                                          {"4", "max", "0", "0"},
                                                          {"4", "max", "0", "abc"}}) {
        try {
            parse_study_grid(bad[0], bad[1], bad[2], bad[3]);
            ADD_FAILURE() << "accepted k '" << bad[0] << "' scorer '" << bad[1] << "' sink '" << bad[2] << "' block '"
                          << bad[3] << "'";
        } catch (const InputError& e) {
            const std::string message = e.what();
            EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
            EXPECT_FALSE(message.empty());
        }
    }
}

TEST(StudyGrid, WarnsWhenNoFreeSlotRemains) {
    // sink = 1 and k = 2: both slots go to the forced blocks.
    auto w = budget_warnings(parse_study_grid("2,3", "max", "1", "128"));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("k = 2"), std::string::npos);
    EXPECT_NE(w[0].find("sink = 1"), std::string::npos);
    EXPECT_NE(w[0].find("no free slot"), std::string::npos);
    // sink = 0: only k = 1 is the floor.
    EXPECT_TRUE(budget_warnings(parse_study_grid("2,3,16", "max", "0", "128")).empty());
    EXPECT_EQ(budget_warnings(parse_study_grid("1,2", "max", "0,1", "128")).size(), 3u);  // (1,0) (1,1) (2,1)
}

// The study on a tiny random model: its numbers for one combination equal
// analyze()'s for the same config, and the full budget matches dense.
TEST(QualityStudy, AgreesWithAnalyzeOnATinyModel) {
    ModelConfig config = tiny_config();
    config.context_length = 4096;  // room for a document with a few needles in a byte-level vocabulary
    Model model = make_random_model(config, 7);
    Tokenizer tokenizer(model.vocab);
    NeedleDocumentOptions o;
    o.n_needles = 3;
    o.target_tokens = 900;
    o.seed = 5;
    NeedleDocument doc = make_needle_document(tokenizer, o);
    ASSERT_GT(doc.tokens.size(), 800u);

    StudyGrid grid = parse_study_grid("2,3,64", "max,mean", "0,1", "32");
    StudyOptions so;
    so.threads = 2;
    std::vector<double> progress;
    so.progress = [&](double f, const std::string&) {
        progress.push_back(f);
        return true;
    };
    int dense_done_calls = 0;
    so.on_dense_done = [&](double ms, int left) {
        ++dense_done_calls;
        EXPECT_GT(ms, 0);
        EXPECT_EQ(left, static_cast<int>(grid.configs().size()));
    };
    StudyResult study = run_quality_study(model, doc.tokens, &doc, grid, so);
    EXPECT_EQ(dense_done_calls, 1);
    ASSERT_EQ(study.rows.size(), grid.configs().size());
    ASSERT_FALSE(progress.empty());
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
    EXPECT_NEAR(progress.back(), 1.0, 1e-9);
    EXPECT_GE(study.dense_answers_correct, 0);
    EXPECT_EQ(study.dense_argmax.size(), doc.tokens.size());

    for (const StudyRow& row : study.rows) {
        SCOPED_TRACE("k " + std::to_string(row.config.k) + " " + to_string(row.config.scorer) + " sink " +
                     std::to_string(row.config.sink));
        AnalysisOptions ao;
        ao.config.k = row.config.k;
        ao.config.block = row.config.block;
        ao.config.scorer = row.config.scorer;
        ao.config.sink = row.config.sink;
        ao.threads = 2;
        ao.random_control = false;
        ao.needles = doc.needles;
        RunResult r = analyze(model, doc.tokens, doc.text, ao);
        double recall = 0;
        for (const auto& l : r.layers) recall += l.recall_mean;
        recall /= r.layers.size();
        EXPECT_NEAR(row.recall_mean, recall, 1e-9);
        EXPECT_DOUBLE_EQ(row.needle_hit_rate, r.needle_hit_rate);
        EXPECT_DOUBLE_EQ(row.perplexity, r.perplexity_msa);
        EXPECT_DOUBLE_EQ(study.dense_perplexity, r.perplexity_dense);
        EXPECT_GE(row.answers_correct, 0);
        EXPECT_LE(row.answers_correct, o.n_needles);
        if (row.config.k == 64) {  // every visible block: MSA is dense
            EXPECT_NEAR(row.recall_mean, 1.0, 1e-5);
            EXPECT_DOUBLE_EQ(row.needle_hit_rate, 1.0);
            EXPECT_DOUBLE_EQ(row.perplexity, study.dense_perplexity);
            EXPECT_EQ(row.answers_correct, study.dense_answers_correct);
        }
    }
    // More budget never selects less: hit rate and recall grow with k.
    for (size_t i = 0; i + 1 < study.rows.size(); ++i) {
        const StudyRow& a = study.rows[i];
        const StudyRow& b = study.rows[i + 1];
        if (a.config.scorer == b.config.scorer && a.config.sink == b.config.sink && a.config.k < b.config.k) {
            EXPECT_LE(a.needle_hit_rate, b.needle_hit_rate);
            EXPECT_LE(a.recall_mean, b.recall_mean + 1e-12);
        }
    }

    // Without MSA forwards: same selection numbers, no perplexity or answers.
    so.msa_forwards = false;
    so.recall = false;
    so.on_dense_done = nullptr;
    StudyResult quick = run_quality_study(model, doc.tokens, &doc, grid, so);
    for (size_t i = 0; i < quick.rows.size(); ++i) {
        EXPECT_DOUBLE_EQ(quick.rows[i].needle_hit_rate, study.rows[i].needle_hit_rate);
        EXPECT_TRUE(std::isnan(quick.rows[i].recall_mean));
        EXPECT_TRUE(std::isnan(quick.rows[i].perplexity));
        EXPECT_EQ(quick.rows[i].answers_correct, -1);
    }

    // Bad layers and foreign tokens are input errors.
    so.layers = {config.n_layers};
    EXPECT_THROW(run_quality_study(model, doc.tokens, &doc, grid, so), InputError);
    so.layers = {};
    std::vector<int> other = doc.tokens;
    other.pop_back();
    EXPECT_THROW(run_quality_study(model, other, &doc, grid, so), InputError);
}

TEST(QualityStudy, CostModelScalesWithTheGrid) {
    ModelConfig c = tiny_config();
    StudyOptions so;
    StudyCost one = study_cost(c, 512, parse_study_grid("4", "max", "0", "32"), so);
    StudyCost many = study_cost(c, 512, parse_study_grid("2,4,8", "max,mean", "0", "32"), so);
    EXPECT_GT(one.forward_flops, 0);
    EXPECT_GT(one.diagnostic_flops, one.forward_flops);
    EXPECT_GT(many.diagnostic_flops, one.diagnostic_flops);  // one more scorer
    ASSERT_EQ(many.msa_forward_flops.size(), 6u);
    EXPECT_LT(many.msa_forward_flops[0], many.msa_forward_flops[2]);  // k = 2 < k = 8
    EXPECT_GT(many.total(true), many.total(false));
    EXPECT_DOUBLE_EQ(many.total(false), many.diagnostic_flops);
}

// The real tokenizer of the default model (only its vocabulary is read).
TEST(RealTokenizer, DocumentSpansAreExact) {
    const std::string path = default_model_path();
    if (!file_exists(path)) GTEST_SKIP() << "default model not cached at " << path;
    Vocabulary vocab = load_vocabulary(path);
    Tokenizer tokenizer(vocab);
    for (int target : {2048, 8192}) {
        NeedleDocumentOptions o;
        o.n_needles = 12;
        o.target_tokens = target;
        o.seed = 3;
        o.add_bos = vocab.add_bos;
        NeedleDocument doc = make_needle_document(tokenizer, o);
        check_document(tokenizer, doc, o);
        // The answer follows " is" as its own token(s): the question token is the prefix's last word.
        for (const auto& f : doc.facts) EXPECT_EQ(tokenizer.token_text(doc.tokens[f.question_token]), " is");
    }
}

// ---------------------------------------------------------------- the CLI

struct CliRun {
    int exit_code = -1;
    std::string out, err;
};

CliRun run_cli(const std::string& args) {
    const std::string dir = make_temp_dir("needle_cli");
    const std::string out = dir + "/out.txt", err = dir + "/err.txt";
    const std::string command =
        std::string(MSASCOPE_BINARY_DIR) + "/app/msascope-cli " + args + " > " + out + " 2> " + err;
    int status = std::system(command.c_str());
    CliRun r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    auto slurp = [](const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

bool cli_built() { return file_exists(std::string(MSASCOPE_BINARY_DIR) + "/app/msascope-cli"); }

TEST(Cli, BadListsExitTwoWithOneLine) {
    if (!cli_built()) GTEST_SKIP() << "msascope-cli is not built";
    for (const std::string& args :
         {std::string("sweep --needles 2 --k 0"), std::string("sweep --needles 2 --k 2,x"),
          std::string("sweep --needles 2 --k 4 --sink 2"), std::string("sweep --needles 2 --k 4 --block 0"),
          std::string("sweep --needles 2 --k 4 --scorer best"), std::string("needle --needles 2 --k 0"),
          std::string("needle --needles 2 --scorer max,nope"), std::string("needle --needles 2 --sink 0,3"),
          std::string("needle --needles 0"), std::string("needle --needles 999"),
          std::string("sweep --synthetic wavy --k 4")}) {
        SCOPED_TRACE(args);
        CliRun r = run_cli(args + " --model /nonexistent/model.gguf");
        EXPECT_EQ(r.exit_code, 2);
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_NE(r.err.find("msascope-cli:"), std::string::npos) << r.err;
    }
}

// The structural test: with sink = 1 and k = 2 no free slot remains
// and the tool says so, here on a tiny model written as a GGUF file.
TEST(Cli, WarnsWhenSinkOneAndKTwoLeaveNoFreeSlot) {
    if (!cli_built()) GTEST_SKIP() << "msascope-cli is not built";
    const std::string dir = make_temp_dir("needle_cli_model");
    const std::string model_path = dir + "/tiny.gguf";
    ModelConfig config = tiny_config();
    config.context_length = 4096;
    write_gguf(make_random_model(config, 11), model_path);
    for (const std::string& command : {std::string("sweep --needles 2 --tokens 700 --block 32 --k 2,4 --sink 1"),
                                       std::string("needle --needles 2 --tokens 700 --block 32 --k 2,4 --sink 1")}) {
        SCOPED_TRACE(command);
        CliRun r = run_cli(command + " --threads 1 --json --model " + model_path);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.err.find("warning: k = 2 with sink = 1 leaves no free slot"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("k = 4 with sink = 1 leaves"), std::string::npos) << r.err;
        nlohmann::json j = nlohmann::json::parse(r.out);
        ASSERT_EQ(j["rows"].size(), 2u);
        EXPECT_EQ(j["rows"][0]["k"], 2);
        EXPECT_EQ(j["rows"][0]["sink"], 1);
        EXPECT_TRUE(j["rows"][0]["needle_hit_rate"].is_number());
        EXPECT_TRUE(j["rows"][0]["answers_correct"].is_number());
        EXPECT_EQ(j["needles"], 2);
        EXPECT_TRUE(j["dense_answers_correct"].is_number());
        EXPECT_FALSE(j["warnings"].empty());
        if (command.rfind("sweep", 0) == 0) {
            EXPECT_TRUE(j["dense_perplexity"].is_number());
            EXPECT_TRUE(j["rows"][1]["recall_mean"].is_number());
            EXPECT_TRUE(j["rows"][1]["perplexity"].is_number());
        }
    }
    // --no-answers / --no-perplexity: the selection numbers only.
    {
        CliRun quick = run_cli("needle --needles 2 --tokens 700 --block 32 --k 2,4 --threads 1 --no-answers --json --model " +
                               model_path);
        ASSERT_EQ(quick.exit_code, 0) << quick.err;
        nlohmann::json j = nlohmann::json::parse(quick.out);
        EXPECT_TRUE(j["rows"][1]["answers_correct"].is_null());
        EXPECT_TRUE(j["rows"][1]["needle_hit_rate"].is_number());
        quick = run_cli("sweep --needles 2 --tokens 700 --block 32 --k 2,4 --threads 1 --no-perplexity --json --model " +
                        model_path);
        ASSERT_EQ(quick.exit_code, 0) << quick.err;
        j = nlohmann::json::parse(quick.out);
        EXPECT_TRUE(j["rows"][1]["perplexity"].is_null());
        EXPECT_TRUE(j["rows"][1]["recall_mean"].is_number());
    }
    // Without needles, a sweep's rows carry needle_hit_rate = null.
    std::ofstream(dir + "/text.txt") << "The quick brown fox jumps over the lazy dog. It was a calm afternoon by "
                                        "the river, and the fox slept in the shade of an old willow tree.";
    CliRun r = run_cli("sweep --text " + dir + "/text.txt --block 8 --k 1,2 --threads 1 --json --model " + model_path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: k = 1 with sink = 0 leaves no free slot"), std::string::npos) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["rows"].size(), 2u);
    EXPECT_TRUE(j["rows"][0]["needle_hit_rate"].is_null());
    EXPECT_TRUE(j["dense_perplexity"].is_number());
}

}  // namespace
