#include "core/needle.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/analysis.h"
#include "core/backend.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/flops.h"

namespace msa {
namespace {

// ------------------------------------------------------------ randomness
// splitmix64: the same stream on every platform (std distributions are not).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, n); n > 0. The modulo bias at n << 2^64 is irrelevant here.
    int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
    template <class T>
    const T& pick(const std::vector<T>& items) { return items[below(static_cast<int>(items.size()))]; }
    template <class T>
    void shuffle(std::vector<T>& items) {
        for (int i = static_cast<int>(items.size()) - 1; i > 0; --i) std::swap(items[i], items[below(i + 1)]);
    }

private:
    uint64_t state_;
};

// Independent streams from one seed, so that e.g. trimming the haystack does
// not move the keys, values or fact depths.
uint64_t stream_seed(uint64_t seed, uint64_t stream) { return Rng(seed * 0x2545f4914f6cdd1dull + stream).next(); }

// ------------------------------------------------------------ word lists
// Haystack vocabulary: everyday people, errands, places and times. None of it
// mentions secret words, and none of the key words below appears here, so the only
// text about a key is its fact and its question.

const std::vector<std::string> kSubjects = {
    "the retired postman", "my neighbor's daughter", "a tired delivery driver", "the new librarian",
    "an elderly gardener", "the night-shift nurse", "a quiet accountant", "the school bus driver",
    "our landlord", "a young carpenter", "the village baker", "the museum guard",
    "a local farmer", "the hotel receptionist", "my uncle", "the train conductor",
    "a curious student", "the plumber", "an off-duty firefighter", "the shop owner",
    "a retired teacher", "the mail carrier", "the dentist's assistant", "a street musician",
    "the park ranger", "the taxi driver", "a visiting engineer", "the choir director",
    "the laundry attendant", "a cheerful waiter", "the football coach", "my grandmother",
};

struct Verb {
    std::string base, past, third;
};
const std::vector<Verb> kVerbs = {
    {"move", "moved", "moves"},          {"carry", "carried", "carries"},
    {"clean", "cleaned", "cleans"},      {"pack", "packed", "packs"},
    {"sort", "sorted", "sorts"},         {"check", "checked", "checks"},
    {"find", "found", "finds"},          {"buy", "bought", "buys"},
    {"sell", "sold", "sells"},           {"borrow", "borrowed", "borrows"},
    {"return", "returned", "returns"},   {"collect", "collected", "collects"},
    {"stack", "stacked", "stacks"},      {"count", "counted", "counts"},
    {"inspect", "inspected", "inspects"}, {"wrap", "wrapped", "wraps"},
    {"unload", "unloaded", "unloads"},   {"pick up", "picked up", "picks up"},
    {"drop off", "dropped off", "drops off"}, {"deliver", "delivered", "delivers"},
    {"hide", "hid", "hides"},            {"label", "labeled", "labels"},
    {"weigh", "weighed", "weighs"},      {"fetch", "fetched", "fetches"},
};

const std::vector<std::string> kObjects = {
    "a squeaky bicycle", "the broken umbrella", "two boxes of apples", "a stack of old newspapers",
    "the kitchen chairs", "a pair of muddy boots", "the garden hose", "a basket of clean towels",
    "the tall ladder", "a jar of honey", "the spare keys", "a bag of flour",
    "the winter coats", "a roll of packing tape", "the borrowed books", "a loaf of bread",
    "the dusty curtains", "a crate of tomatoes", "the folding table", "a set of paintbrushes",
    "the office printer", "a bundle of letters", "the bathroom mirror", "a tin of biscuits",
    "three potted plants", "the old typewriter", "a box of light bulbs", "the picnic blankets",
};

const std::vector<std::string> kPlaces = {
    "near the old harbor", "behind the post office", "in the community hall", "at the train station",
    "on the third floor", "beside the river", "in the back yard", "at the corner market",
    "outside the pharmacy", "in the school gym", "next to the statue", "at the bus depot",
    "in the parking lot", "on the front porch", "inside the storage room", "by the tennis courts",
    "in the hospital lobby", "at the town hall", "under the railway bridge", "in the hardware store",
};

const std::vector<std::string> kTimes = {
    "on Tuesday morning", "early on Saturday", "after lunch", "before sunrise",
    "late in the evening", "during the school holidays", "last winter", "on a windy afternoon",
    "just before closing time", "the day after the festival", "around noon", "at the end of the month",
    "on the first warm day of spring", "on Sunday", "the next morning", "in the middle of the week",
};

const std::vector<std::string> kEndings = {
    "and nobody noticed", "which took most of the afternoon", "although it was not really necessary",
    "because the forecast promised rain", "just as the shop was closing", "while the radio played old songs",
    "and then sat down for a cup of tea", "before anyone else arrived", "as had been agreed the week before",
};

const std::vector<std::string> kObstacles = {
    "the door was locked", "it started to rain", "the car would not start",
    "nobody had the right key", "the lift was out of order", "there was no time left",
};

const std::vector<std::string> kWeather = {
    "mild", "cold and grey", "unusually warm", "damp", "bright but windy", "calm",
};

// Keys: one adjective and one noun each, no word shared between two keys.
const std::vector<std::string> kKeyAdjectives = {
    "blue", "green", "silver", "crimson", "golden", "purple", "orange", "yellow",
    "copper", "marble", "velvet", "scarlet", "ivory", "bronze", "amber", "violet",
    "emerald", "granite", "crystal", "cobalt", "maroon", "pearl", "teal", "indigo",
};
const std::vector<std::string> kKeyNouns = {
    "lighthouse", "greenhouse", "observatory", "windmill", "boathouse", "carousel", "chapel", "lantern",
    "piano", "telescope", "suitcase", "tower", "caravan", "mailbox", "clock", "gazebo",
    "aquarium", "violin", "canoe", "treehouse", "cottage", "kite", "trunk", "compass",
};

// Values: single common words, each one token or a few. The default model
// (135M parameters) copies a word it has seen far more reliably than a
// 5-digit number, and a word is as easy to check.
const std::vector<std::string> kValueWords = {
    "lemon", "walnut", "pepper", "otter", "falcon", "tulip", "cactus", "saffron", "pumpkin", "dolphin",
    "hammock", "meadow", "pebble", "cinnamon", "badger", "orchid", "lobster", "mango", "giraffe", "thimble",
    "raccoon", "almond", "trumpet", "glacier", "parrot", "turnip", "walrus", "pickle", "zebra", "coconut",
    "squirrel", "nutmeg", "sparrow", "hedgehog", "avocado", "peacock", "juniper", "pelican",
};

std::string capitalized(std::string s) {
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
    return s;
}

// One grammatical haystack sentence.
std::string filler_sentence(Rng& rng) {
    const std::string subject = rng.pick(kSubjects);
    const Verb& verb = rng.pick(kVerbs);
    const std::string object = rng.pick(kObjects);
    const std::string place = rng.pick(kPlaces);
    const std::string time = rng.pick(kTimes);
    std::string s;
    switch (rng.below(10)) {
        case 0: s = time + ", " + subject + " " + verb.past + " " + object + " " + place; break;
        case 1: s = subject + " " + verb.past + " " + object + " " + place + " " + time; break;
        case 2: s = subject + " usually " + verb.third + " " + object + " " + place; break;
        case 3: s = "nobody was surprised when " + subject + " " + verb.past + " " + object + " " + place; break;
        case 4: {
            std::string other = rng.pick(kSubjects);
            if (other == subject) other = "a friend";
            s = "according to " + other + ", " + subject + " " + verb.past + " " + object + " " + place + " " + time;
            break;
        }
        case 5:
            s = subject + " wanted to " + verb.base + " " + object + " " + place + ", but " + rng.pick(kObstacles);
            break;
        case 6: s = "it was " + time + " when " + subject + " finally " + verb.past + " " + object; break;
        case 7: s = subject + " " + verb.past + " " + object + " " + place + ", " + rng.pick(kEndings); break;
        case 8: s = "once a week, " + subject + " " + verb.third + " " + object + " " + place; break;
        default:
            s = "the weather was " + rng.pick(kWeather) + " " + time + ", and " + subject + " " + verb.past + " " +
                object + " " + place;
            break;
    }
    return capitalized(s) + ".";
}

struct KeyedFact {
    std::string key, value, sentence, question, prefix;
};

// Character spans inside the composed text.
struct FactChars {
    size_t sentence_begin = 0, sentence_end = 0;
    size_t value_begin = 0, value_end = 0;
    size_t answer_begin = 0, answer_end = 0;  // from the end of the prefix to the end of the value
    int depth_percent = 0;
};

struct Composition {
    std::string text;
    std::vector<FactChars> facts;
    size_t questions_begin = 0;
};

// Haystack of `n_filler` sentences with the facts inserted before the filler
// sentences at `positions` (ascending), paragraphs where `breaks` says, then
// the question section.
Composition compose(const std::vector<std::string>& filler, int n_filler, const std::vector<bool>& breaks,
                    const std::vector<KeyedFact>& facts, const std::vector<int>& positions) {
    Composition c;
    c.facts.resize(facts.size());
    size_t next_fact = 0;
    bool line_start = true;
    auto append_sentence = [&](const std::string& sentence) -> size_t {
        if (!line_start) c.text += ' ';
        line_start = false;
        size_t begin = c.text.size();
        c.text += sentence;
        return begin;
    };
    for (int i = 0; i <= n_filler; ++i) {
        while (next_fact < facts.size() && positions[next_fact] == i) {
            const KeyedFact& f = facts[next_fact];
            FactChars& fc = c.facts[next_fact];
            fc.sentence_begin = append_sentence(f.sentence);
            fc.sentence_end = c.text.size();
            fc.value_end = fc.sentence_end - 1;  // before the final '.'
            fc.value_begin = fc.value_end - f.value.size();
            fc.depth_percent = n_filler ? static_cast<int>(std::lround(100.0 * i / n_filler)) : 0;
            ++next_fact;
        }
        if (i == n_filler) break;
        append_sentence(filler[i]);
        if (breaks[i] && i + 1 < n_filler) {
            c.text += "\n\n";
            line_start = true;
        }
    }
    c.questions_begin = c.text.size();
    c.text += "\n\nAnswer from the text above.\n";
    for (size_t i = 0; i < facts.size(); ++i) {
        const KeyedFact& f = facts[i];
        c.text += "Q: " + f.question + " A: " + f.prefix;
        c.facts[i].answer_begin = c.text.size();
        c.text += " " + f.value;
        c.facts[i].answer_end = c.text.size();
        c.text += ".\n";
    }
    return c;
}

// Token index range [first, last) of the tokens overlapping chars [begin, end).
std::pair<int, int> token_span(const std::vector<size_t>& token_begin_chars, size_t text_size, size_t begin,
                               size_t end) {
    const int n = static_cast<int>(token_begin_chars.size());
    auto token_end_char = [&](int t) { return t + 1 < n ? token_begin_chars[t + 1] : text_size; };
    int first = 0;
    while (first < n && token_end_char(first) <= begin) ++first;
    int last = first;
    while (last < n && token_begin_chars[last] < end) ++last;
    return {first, last};
}

std::vector<std::string> split_list(const std::string& list, const char* flag) {
    std::vector<std::string> items;
    std::string item;
    std::istringstream in(list);
    while (std::getline(in, item, ',')) {
        size_t b = item.find_first_not_of(" \t");
        size_t e = item.find_last_not_of(" \t");
        item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
        if (item.empty()) throw InputError(std::string(flag) + ": empty item in list '" + list + "'");
        items.push_back(item);
    }
    if (items.empty()) throw InputError(std::string(flag) + ": empty list");
    return items;
}

std::vector<int> parse_positive_list(const std::string& list, const char* flag, int min_value) {
    std::vector<int> values;
    for (const std::string& item : split_list(list, flag)) {
        size_t used = 0;
        long v = 0;
        try {
            v = std::stol(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || v > 1'000'000'000L)
            throw InputError(std::string(flag) + ": '" + item + "' is not a whole number");
        if (v < min_value)
            throw InputError(std::string(flag) + " must be at least " + std::to_string(min_value) + " (got " + item + ")");
        if (std::find(values.begin(), values.end(), static_cast<int>(v)) == values.end())
            values.push_back(static_cast<int>(v));
    }
    return values;
}


}  // namespace

int max_needles() {
    return static_cast<int>(std::min({kKeyAdjectives.size(), kKeyNouns.size(), kValueWords.size()}));
}

NeedleDocument make_needle_document(const Tokenizer& tokenizer, const NeedleDocumentOptions& options) {
    if (options.n_needles < 1 || options.n_needles > max_needles())
        throw InputError("--needles must be between 1 and " + std::to_string(max_needles()) + " (got " +
                         std::to_string(options.n_needles) + ")");

    // Keys, values and questions.
    Rng key_rng(stream_seed(options.seed, 1));
    std::vector<std::string> adjectives = kKeyAdjectives, nouns = kKeyNouns;
    key_rng.shuffle(adjectives);
    key_rng.shuffle(nouns);
    std::vector<KeyedFact> facts;
    std::vector<std::string> values = kValueWords;
    key_rng.shuffle(values);
    for (int i = 0; i < options.n_needles; ++i) {
        KeyedFact f;
        f.key = adjectives[i] + " " + nouns[i];
        f.value = values[i];
        f.prefix = "The secret word of the " + f.key + " is";
        f.sentence = f.prefix + " " + f.value + ".";
        f.question = "What is the secret word of the " + f.key + "?";
        facts.push_back(std::move(f));
    }

    // Token budget: measure the fixed parts once, then fill with haystack
    // sentences until the estimate reaches the target. Pieces are measured
    // with the separator they will carry, so the estimate is close; the exact
    // count comes from encoding the whole text below.
    const int bos = options.add_bos ? 1 : 0;
    Composition probe = compose({}, 0, {}, facts, std::vector<int>(facts.size(), 0));
    const int fixed_tokens = static_cast<int>(tokenizer.encode(probe.text, false).size()) + bos;
    const int min_filler = options.n_needles;  // at least one haystack sentence per fact
    Rng filler_rng(stream_seed(options.seed, 2));
    Rng break_rng(stream_seed(options.seed, 3));
    std::vector<std::string> filler;
    std::vector<bool> breaks;
    int estimate = fixed_tokens;
    int until_break = 3 + break_rng.below(5);
    while (true) {
        std::string sentence = filler_sentence(filler_rng);
        int cost = static_cast<int>(tokenizer.encode(" " + sentence, false).size());
        if (estimate + cost > options.target_tokens && static_cast<int>(filler.size()) >= min_filler) break;
        if (estimate + cost > options.target_tokens)
            throw InputError("--tokens " + std::to_string(options.target_tokens) + " is too small for " +
                             std::to_string(options.n_needles) + " needles (need about " +
                             std::to_string(fixed_tokens + 16 * min_filler) + ")");
        estimate += cost;
        filler.push_back(std::move(sentence));
        breaks.push_back(--until_break == 0);
        if (breaks.back()) until_break = 3 + break_rng.below(5);
    }

    // Compose, encode, and drop haystack sentences from the end while the
    // exact count is over the target (rarely more than one round).
    int n_filler = static_cast<int>(filler.size());
    Composition c;
    std::vector<int> tokens;
    std::vector<int> positions;
    while (true) {
        // Fact i lands at a seeded random sentence boundary inside the i-th
        // of n equal slices of the haystack: random depths, spread over the
        // whole document, in order.
        Rng depth_rng(stream_seed(options.seed, 4));
        positions.clear();
        const int n = options.n_needles;
        for (int i = 0; i < n; ++i) {
            int lo = static_cast<int>(static_cast<long>(n_filler) * i / n);
            int hi = static_cast<int>(static_cast<long>(n_filler) * (i + 1) / n);
            positions.push_back(lo + depth_rng.below(std::max(1, hi - lo)));
        }
        c = compose(filler, n_filler, breaks, facts, positions);
        tokens = tokenizer.encode(c.text, options.add_bos);
        const int excess = static_cast<int>(tokens.size()) - options.target_tokens;
        if (excess <= 0) break;
        const int drop = excess / 12 + 1;  // haystack sentences run ~15 tokens
        if (n_filler - drop < min_filler)
            throw InputError("--tokens " + std::to_string(options.target_tokens) + " is too small for " +
                             std::to_string(options.n_needles) + " needles");
        n_filler -= drop;
    }

    // Character offset of every token, from the bytes each one stands for.
    std::vector<size_t> token_chars;
    token_chars.reserve(tokens.size());
    size_t offset = 0;
    for (size_t t = bos; t < tokens.size(); ++t) {
        token_chars.push_back(offset);
        offset += tokenizer.token_text(tokens[t]).size();
    }
    if (offset != c.text.size())
        throw std::runtime_error("needle document: token bytes (" + std::to_string(offset) +
                                 ") do not add up to the text (" + std::to_string(c.text.size()) + ")");
    auto span = [&](size_t begin, size_t end) {
        auto s = token_span(token_chars, c.text.size(), begin, end);
        return std::pair<int, int>{s.first + bos, s.second + bos};
    };

    NeedleDocument doc;
    doc.haystack_sentences = n_filler;
    doc.questions_token_begin = span(c.questions_begin, c.questions_begin + 1).first;
    for (size_t i = 0; i < facts.size(); ++i) {
        const FactChars& fc = c.facts[i];
        PlantedFact p;
        p.key = facts[i].key;
        p.value = facts[i].value;
        p.sentence = facts[i].sentence;
        p.question = facts[i].question;
        p.answer_prefix = facts[i].prefix;
        p.depth_percent = fc.depth_percent;
        std::tie(p.sentence_token_begin, p.sentence_token_end) = span(fc.sentence_begin, fc.sentence_end);
        std::tie(p.value_token_begin, p.value_token_end) = span(fc.value_begin, fc.value_end);
        std::tie(p.answer_token_begin, p.answer_token_end) = span(fc.answer_begin, fc.answer_end);
        p.question_token = p.answer_token_begin - 1;
        Needle needle;
        needle.key = p.key;
        needle.value = p.value;
        needle.token_begin = p.value_token_begin;
        needle.token_end = p.value_token_end;
        needle.question_token = p.question_token;
        doc.needles.push_back(needle);
        doc.facts.push_back(std::move(p));
    }
    doc.text = std::move(c.text);
    doc.tokens = std::move(tokens);
    return doc;
}

std::vector<bool> answers_correct(const NeedleDocument& document, const std::vector<int>& argmax) {
    std::vector<bool> correct;
    for (const PlantedFact& f : document.facts) {
        bool ok = f.answer_token_end > f.answer_token_begin && f.answer_token_begin >= 1 &&
                  f.answer_token_end <= static_cast<int>(argmax.size());
        for (int p = f.answer_token_begin; ok && p < f.answer_token_end; ++p) ok = argmax[p - 1] == document.tokens[p];
        correct.push_back(ok);
    }
    return correct;
}

int count_answers_correct(const NeedleDocument& document, const std::vector<int>& argmax) {
    std::vector<bool> correct = answers_correct(document, argmax);
    return static_cast<int>(std::count(correct.begin(), correct.end(), true));
}

std::string predicted_answer(const Tokenizer& tokenizer, const NeedleDocument& document, int fact,
                             const std::vector<int>& argmax) {
    const PlantedFact& f = document.facts.at(fact);
    std::vector<int> predicted;
    for (int p = f.answer_token_begin; p < f.answer_token_end && p - 1 < static_cast<int>(argmax.size()); ++p)
        predicted.push_back(argmax[p - 1]);
    return tokenizer.decode(predicted);
}

double HitCount::rate() const { return total ? static_cast<double>(hits) / total : NAN; }

HitCount count_needle_hits(const Selection& selection, const std::vector<Needle>& needles, int block) {
    HitCount count;
    for (const Needle& needle : needles) {
        if (needle.question_token < 0 || needle.question_token >= selection.n_tokens) continue;
        const int first = needle.token_begin / block;
        const int last = std::max(needle.token_begin, needle.token_end - 1) / block;
        for (int g = 0; g < selection.n_groups; ++g) {
            const int32_t* row = selection.row(needle.question_token, g);
            bool hit = false;
            for (int i = 0; i < selection.slots && !hit; ++i) hit = row[i] >= first && row[i] <= last;
            count.hits += hit;
            ++count.total;
        }
    }
    return count;
}

// ------------------------------------------------------------------- studies

std::vector<StudyConfig> StudyGrid::configs() const {
    std::vector<StudyConfig> out;
    for (int block : blocks)
        for (Scorer scorer : scorers)
            for (int sink : sinks)
                for (int k : ks) out.push_back({k, scorer, sink, block});
    return out;
}

StudyGrid parse_study_grid(const std::string& k_list, const std::string& scorer_list, const std::string& sink_list,
                           const std::string& block_list) {
    StudyGrid grid;
    grid.ks = parse_positive_list(k_list, "--k", 1);
    grid.blocks = parse_positive_list(block_list, "--block", 1);
    grid.sinks = parse_positive_list(sink_list, "--sink", std::numeric_limits<int>::min());
    for (int sink : grid.sinks)
        if (sink != 0 && sink != 1) throw InputError("--sink must be 0 or 1 (got " + std::to_string(sink) + ")");
    for (const std::string& name : split_list(scorer_list, "--scorer")) {
        Scorer s = parse_scorer(name);  // InputError naming the known scorers
        if (std::find(grid.scorers.begin(), grid.scorers.end(), s) == grid.scorers.end()) grid.scorers.push_back(s);
    }
    return grid;
}

std::vector<std::string> budget_warnings(const StudyGrid& grid) {
    std::vector<std::string> warnings;
    for (int sink : grid.sinks)
        for (int k : grid.ks) {
            MsaConfig c;
            c.k = k;
            c.sink = sink;
            if (budget_has_free_slot(c)) continue;
            warnings.push_back("k = " + std::to_string(k) + " with sink = " + std::to_string(sink) +
                               " leaves no free slot: only the forced blocks (" +
                               (sink ? "sink + local" : "local") +
                               ") are kept, so no distant block can be selected");
        }
    return warnings;
}

double StudyCost::total(bool msa_forwards) const {
    double sum = diagnostic_flops;
    if (msa_forwards)
        for (double f : msa_forward_flops) sum += f;
    return sum;
}

StudyCost study_cost(const ModelConfig& c, int n_tokens, const StudyGrid& grid, const StudyOptions& options) {
    const double n = n_tokens;
    const double hidden = c.hidden, d = c.head_dim;
    const double per_layer_linear = hidden * (2.0 * c.n_heads * d + 2.0 * c.n_kv_heads * d) + 3.0 * hidden * c.ffn;
    const double linear = 2.0 * n * (c.n_layers * per_layer_linear + hidden * c.vocab);
    const int n_layers_measured = options.layers.empty() ? c.n_layers : static_cast<int>(options.layers.size());
    const double index = index_flops(n_tokens, c.n_kv_heads, c.head_dim);
    StudyCost cost;
    cost.forward_flops = linear + c.n_layers * dense_attention_flops(n_tokens, c.n_heads, c.head_dim);
    double extra_per_layer = 0;
    for (size_t b = 0; b < grid.blocks.size(); ++b) {
        // The dense block mass needs the scores and the softmax, not P.V: about half an attention.
        if (options.recall) extra_per_layer += 0.5 * dense_attention_flops(n_tokens, c.n_heads, c.head_dim);
        extra_per_layer += grid.scorers.size() * index;
    }
    cost.diagnostic_flops = cost.forward_flops + n_layers_measured * extra_per_layer;
    for (const StudyConfig& config : grid.configs())
        cost.msa_forward_flops.push_back(
            linear + c.n_layers * (sparse_attention_flops(n_tokens, c.n_heads, c.head_dim, config.k, config.block) + index));
    return cost;
}

double estimate_study_seconds(const Model& model, const std::vector<int>& tokens, const StudyGrid& grid,
                              const StudyOptions& options, int probe_tokens) {
    const int n_probe = std::max(2, std::min<int>(probe_tokens, static_cast<int>(tokens.size())));
    std::vector<int> probe(tokens.begin(), tokens.begin() + n_probe);
    const ComputeBackend& backend = options.backend ? *options.backend : cpu_backend();
    ForwardOptions o;
    o.threads = options.threads;
    double t0 = now_ms();
    backend.forward(model, probe, o);
    const double probe_s = std::max(1e-6, (now_ms() - t0) / 1000);
    const double rate = study_cost(model.config, n_probe, grid, options).forward_flops / probe_s;
    return study_cost(model.config, static_cast<int>(tokens.size()), grid, options).total(options.msa_forwards) / rate;
}

StudyResult run_quality_study(const Model& model, const std::vector<int>& tokens, const NeedleDocument* document,
                              const StudyGrid& grid, const StudyOptions& options) {
    const ModelConfig& mc = model.config;
    const std::vector<StudyConfig> configs = grid.configs();
    if (configs.empty()) throw InputError("nothing to measure: the k, scorer, sink and block lists must not be empty");
    if (tokens.size() < 2) throw InputError("need at least 2 tokens (got " + std::to_string(tokens.size()) + ")");
    if (document && document->tokens != tokens) throw InputError("the tokens are not the needle document's tokens");
    std::set<int> analysed;
    for (int layer : options.layers) {
        if (layer < 0 || layer >= mc.n_layers)
            throw InputError("layer " + std::to_string(layer) + " is out of range (the model has " +
                             std::to_string(mc.n_layers) + " layers)");
        analysed.insert(layer);
    }
    if (options.layers.empty())
        for (int l = 0; l < mc.n_layers; ++l) analysed.insert(l);

    struct Accumulator {
        double recall_sum = 0;
        long recall_count = 0;
        HitCount needles;
    };
    std::vector<Accumulator> acc(configs.size());
    const size_t n_scorers = grid.scorers.size(), n_sinks = grid.sinks.size(), n_ks = grid.ks.size();
    auto config_index = [&](size_t b, size_t s, size_t z, size_t k) { return ((b * n_scorers + s) * n_sinks + z) * n_ks + k; };
    const std::vector<Needle> no_needles;
    const std::vector<Needle>& needles = document ? document->needles : no_needles;

    // Progress in units of analytic FLOPs.
    const StudyCost cost = study_cost(mc, static_cast<int>(tokens.size()), grid, options);
    const double dense_weight = cost.diagnostic_flops;
    const double total_weight = cost.total(options.msa_forwards);
    std::vector<double> forward_base(configs.size(), dense_weight);
    for (size_t i = 1; i < configs.size(); ++i) forward_base[i] = forward_base[i - 1] + cost.msa_forward_flops[i - 1];
    auto scaled_progress = [&](double base, double weight) -> ProgressFn {
        if (!options.progress) return {};
        return [&options, base, weight, total_weight](double f, const std::string& stage) {
            return options.progress((base + weight * f) / total_weight, stage);
        };
    };

    const ComputeBackend& backend = options.backend ? *options.backend : cpu_backend();
    StudyResult result;
    ForwardOptions dense_options;
    dense_options.threads = options.threads;
    if (ProgressFn dense_progress = scaled_progress(0.0, dense_weight))
        dense_options.progress = [dense_progress](double f, const std::string& stage) {
            return dense_progress(f, "dense + selections, " + stage);
        };
    dense_options.attention = [&](int layer, const QKV& qkv, const IndexInputs* index, float* out) {
        backend.dense_attention(qkv, out, options.threads);
        if (!analysed.count(layer)) return;
        IndexInputs free_index;
        if (options.index == IndexKind::free || !index) {
            free_index = free_index_inputs(qkv);
            index = &free_index;
        }
        const int group_size = qkv.shape.group_size();
        for (size_t b = 0; b < grid.blocks.size(); ++b) {
            const int block = grid.blocks[b];
            BlockMass mass;
            if (options.recall) mass = dense_block_mass(qkv, block, options.threads);
            for (size_t s = 0; s < n_scorers; ++s) {
                // One scoring pass serves every k and sink: top-k only reads the scores.
                BlockScores scores = score_blocks(*index, block, grid.scorers[s], options.seed, options.threads);
                for (size_t z = 0; z < n_sinks; ++z)
                    for (size_t k = 0; k < n_ks; ++k) {
                        Selection selection = select_blocks(scores, grid.ks[k], grid.sinks[z], block);
                        Accumulator& a = acc[config_index(b, s, z, k)];
                        if (options.recall) {
                            std::vector<float> recall = attention_recall(mass, selection, group_size);
                            for (float r : recall) a.recall_sum += r;
                            a.recall_count += static_cast<long>(recall.size());
                        }
                        if (!needles.empty()) {
                            HitCount h = count_needle_hits(selection, needles, block);
                            a.needles.hits += h.hits;
                            a.needles.total += h.total;
                        }
                    }
            }
        }
    };
    double t0 = now_ms();
    ForwardResult dense = backend.forward(model, tokens, dense_options);
    if (dense.cancelled) throw std::runtime_error("cancelled");
    result.dense_ms = now_ms() - t0;
    result.timings.push_back({"dense forward + selections of all combinations", result.dense_ms});
    result.dense_perplexity = dense.perplexity();
    if (document) result.dense_answers_correct = count_answers_correct(*document, dense.argmax);
    result.dense_argmax = std::move(dense.argmax);

    for (size_t i = 0; i < configs.size(); ++i) {
        StudyRow row;
        row.config = configs[i];
        if (acc[i].recall_count) row.recall_mean = acc[i].recall_sum / acc[i].recall_count;
        row.needle_hit_rate = acc[i].needles.rate();
        result.rows.push_back(row);
    }
    if (options.on_dense_done) options.on_dense_done(result.dense_ms, options.msa_forwards ? static_cast<int>(configs.size()) : 0);
    if (!options.msa_forwards) return result;

    for (size_t i = 0; i < configs.size(); ++i) {
        StudyRow& row = result.rows[i];
        MsaConfig msa_config;
        msa_config.k = row.config.k;
        msa_config.block = row.config.block;
        msa_config.scorer = row.config.scorer;
        msa_config.sink = row.config.sink;
        msa_config.index = options.index;
        msa_config.seed = options.seed;
        std::ostringstream stage;
        stage << "MSA forward " << (i + 1) << "/" << configs.size() << " (k " << msa_config.k << ", "
              << to_string(msa_config.scorer) << ", sink " << msa_config.sink << ", B " << msa_config.block << ")";
        ForwardOptions o;
        o.threads = options.threads;
        ProgressFn inner = scaled_progress(forward_base[i], cost.msa_forward_flops[i]);
        const std::string stage_name = stage.str();
        if (inner) o.progress = [inner, stage_name](double f, const std::string&) { return inner(f, stage_name); };
        o.attention = msa_attention_hook(backend, msa_config, options.threads);
        double start = now_ms();
        ForwardResult r = backend.forward(model, tokens, o);
        if (r.cancelled) throw std::runtime_error("cancelled");
        row.forward_ms = now_ms() - start;
        result.timings.push_back({stage_name, row.forward_ms});
        row.perplexity = r.perplexity();
        if (document) row.answers_correct = count_answers_correct(*document, r.argmax);
    }
    return result;
}

}  // namespace msa
