// Localisation over a campaign (docs/LOCALIZE.md, "Localising over a campaign"): many images are
// localised one by one, and per layer only two numbers per image are kept (relative L2 error and
// max |a-b|), so memory is O(layers x images) doubles, never the tensors. Each layer's error is
// then compared between the images whose stored top-1 differs between A and B and those where it
// agrees (a rank test with its effect size), which ranks the layers that explain the campaign's
// label differences rather than one image's story. Pure logic and formatting; `deltann localize
// --db --images` gathers the captures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/localize.h"
#include "deltann/stats.h"
#include "deltann/store.h"

namespace deltann {

// Which images `--images` localises.
enum class CampaignImages {
  all,          // every image with results for both, up to the cap
  disagreeing,  // every image whose top-1 differs, and as many agreeing ones (a seeded sample)
};
// "all" | "disagreeing"; nullopt for anything else.
std::optional<CampaignImages> parse_campaign_images(const std::string& text);

// One image with stored results for both A and B.
struct PairedImage {
  std::string key, path;
  int top1_a = -1, top1_b = -1;  // -1 when a result has no top-1
  bool differs() const { return top1_a != top1_b; }
};

struct CampaignSelection {
  std::vector<PairedImage> images;  // the chosen ones, in the campaign's image order
  size_t differing_available = 0, agreeing_available = 0;
  size_t differing_used = 0, agreeing_used = 0;
  std::string description;  // what was used and why, for the person running the command
};

// Chooses from `available` (in image order). `disagreeing`: every differing image, and an equal
// number of agreeing ones drawn with `seed`; `all`: every image. With more than `max_images`, the
// differing images get at most half of the cap (more when fewer agreeing ones exist), drawn with
// `seed`, and the agreeing ones the rest. The same inputs always give the same choice.
CampaignSelection select_campaign_images(const std::vector<PairedImage>& available,
                                         CampaignImages mode, size_t max_images, uint64_t seed);

// The images with usable results for variants A and B (each: model id and canonical environment;
// the two models differ when B is a second model of the campaign, `--b-model`). Throws Error
// naming the database when a variant is missing.
std::vector<PairedImage> paired_images(const Store& store, int64_t model_a,
                                       const std::string& env_a, int64_t model_b,
                                       const std::string& env_b);

// Per layer, what the campaign says about it.
struct CampaignLayer {
  size_t position = 0;  // in A's execution order (first image that had it)
  std::string name, op;
  stats::Separation separation;  // rel L2 of differing images (higher) vs agreeing ones
  double p_holm = 1;             // Holm-adjusted across the layers
  double median_differing = 0, median_agreeing = 0;    // rel L2 per group (NaN: empty)
  double max_abs_differing = 0, max_abs_agreeing = 0;  // median max |a-b| per group
  size_t images = 0;                                   // images where it was comparable
};

// Per image: its group and its own first jump.
struct CampaignImageResult {
  std::string key;
  bool differs = false;
  int top1_a = -1, top1_b = -1;
  std::string jump;  // the first-jump layer, "" when none
  size_t above = 0;  // layers above the threshold
};

struct JumpCount {
  std::string layer;  // "" counts the images with no jump
  size_t differing = 0, agreeing = 0;
};

struct CampaignLocalization {
  std::string env_a, env_b, mode_a, mode_b;
  std::vector<CampaignLayer> layers;  // in execution order
  std::vector<size_t> ranking;        // indices into layers, best-separating first
  // The earliest layer (execution order) whose error is significantly higher on the differing
  // images (Holm-adjusted p below alpha, auc above 0.5): where the separation starts.
  std::optional<size_t> first_separating;
  std::vector<JumpCount> first_jumps;  // most frequent among differing images first
  std::vector<CampaignImageResult> images;
  size_t differing = 0, agreeing = 0;
  double confidence = 0.95, alpha = 0.05;
};

// Accumulates one image at a time and keeps only scalars.
class CampaignAccumulator {
 public:
  void add(const PairedImage& image, const Localization& l);
  // Tests every layer; `confidence` for the auc interval, `alpha` for first_separating.
  CampaignLocalization finish(double confidence, double alpha) const;
  size_t images() const { return images_.size(); }

 private:
  struct Series {
    size_t position = 0;
    std::string name, op;
    std::vector<double> rel_l2, max_abs;  // one per image added; NaN where absent
  };
  std::vector<Series> layers_;
  std::vector<CampaignImageResult> images_;
  std::string env_a_, env_b_, mode_a_, mode_b_;
};

nlohmann::json to_json(const CampaignLocalization& c, const LocalizeOptions& options);
// The terminal table: the `rows` best-separating layers, the first-jump histogram, a summary.
std::string campaign_localization_text(const CampaignLocalization& c, size_t rows = 20);

}  // namespace deltann
