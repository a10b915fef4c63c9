// Datasets: which images a campaign runs over, with optional ground-truth class ids.
//
// Four layouts are recognised:
//  - list file: a text file, one `path [class_id]` per line (paths relative to the file's folder;
//    `#` starts a comment);
//  - one image file (by its extension or, for a file that is not text, its first bytes);
//  - ImageNet validation layout: a folder whose sub-folders are synset ids (n01440764, ...); class
//    ids follow a synset list (`synsets.txt` / `LOC_synset_mapping.txt` in the folder, or
//    --synsets), or the sorted folder names when all 1000 are present;
//  - plain folder: every file below it with an image extension (sorted), labels from an optional
//    list file.
//
// An entry that cannot be used (a symlink loop, a FIFO, a folder named in a list, a duplicate, a
// malformed label...) stays in the dataset with the reason, so that one bad entry is reported
// and the others run.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace deltann {

struct ImageEntry {
  // Stable id inside the dataset: the path as the list file names it (a later duplicate gets
  // " (line N)" appended), or the path relative to the scanned folder.
  std::string key;
  std::filesystem::path path;  // absolute
  std::optional<int> label;    // ground-truth class id
  std::string problem;         // why the entry cannot be used; empty when it can
  // The key of the earlier entry naming the same file, when this one repeats it (`problem` then
  // says so); the campaign runs that entry once and records this one as its duplicate.
  std::string duplicate_of = {};
  bool usable() const { return problem.empty(); }
};

struct Dataset {
  std::string layout;  // "list", "image", "imagenet" or "folder"
  std::filesystem::path root;
  std::vector<ImageEntry> images;  // every entry, usable or not, in the dataset's order
  // What the user should know that is no entry: the files a folder scan did not take, duplicate
  // lines of a --labels file. Sentences naming the files.
  std::vector<std::string> notes;
  bool has_labels() const;
};

struct DatasetOptions {
  std::optional<std::filesystem::path> labels;   // list file giving labels for a plain folder
  std::optional<std::filesystem::path> synsets;  // synset order for the ImageNet layout
};

// Loads a dataset. Throws Error naming the path when the dataset itself cannot be read (missing,
// a binary file given as a list, a malformed synset list); problems of single entries are kept
// in ImageEntry::problem instead.
Dataset load_dataset(const std::filesystem::path& path, const DatasetOptions& options = {});

// True for the file extensions a folder scan takes as images (case-insensitive).
bool looks_like_image(const std::filesystem::path& path);

// Those extensions, e.g. ".bmp .gif .jpeg ...", for messages and help.
std::string image_extensions();

// Why `path` cannot be read as an image file, or "" when it is a regular file (after following
// symlinks): "file does not exist", "symlink loop", "name too long", "not a regular file (a
// FIFO)", ...
std::string file_problem(const std::filesystem::path& path);

}  // namespace deltann
