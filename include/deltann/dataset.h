// Datasets: which images a campaign runs over, with optional ground-truth class ids.
//
// Three layouts are recognised:
//  - list file: a text file, one `path [class_id]` per line (paths relative to the file's folder;
//    `#` starts a comment);
//  - ImageNet validation layout: a folder whose sub-folders are synset ids (n01440764, ...); class
//    ids follow a synset list (`synsets.txt` / `LOC_synset_mapping.txt` in the folder, or
//    --synsets), or the sorted folder names when all 1000 are present;
//  - plain folder: every image file below it (sorted), labels from an optional list file.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace deltann {

struct ImageEntry {
  std::string key;             // stable id inside the dataset: path relative to its root
  std::filesystem::path path;  // absolute
  std::optional<int> label;    // ground-truth class id
};

struct Dataset {
  std::string layout;  // "list", "imagenet" or "folder"
  std::filesystem::path root;
  std::vector<ImageEntry> images;
  bool has_labels() const;
};

struct DatasetOptions {
  std::optional<std::filesystem::path> labels;   // list file giving labels for a plain folder
  std::optional<std::filesystem::path> synsets;  // synset order for the ImageNet layout
};

// Loads a dataset; throws Error naming the file and line when a list or synset file is malformed.
Dataset load_dataset(const std::filesystem::path& path, const DatasetOptions& options = {});

// True for the file extensions deltann treats as images (case-insensitive).
bool looks_like_image(const std::filesystem::path& path);

}  // namespace deltann
