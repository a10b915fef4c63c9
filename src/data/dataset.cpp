#include "deltann/dataset.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <regex>

#include "deltann/error.h"

namespace deltann {
namespace fs = std::filesystem;
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool is_integer(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

struct ListLine {
  std::string path;
  std::optional<int> label;
};

// One `path [label]` per line. A '#' at the start of a line or after whitespace starts a comment,
// so file names may contain '#'. The label is the last whitespace-separated token when it is an
// integer, so file names may contain spaces.
std::vector<ListLine> read_list_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error("cannot read list file " + file.string());
  std::vector<ListLine> lines;
  int number = 0;
  for (std::string raw; std::getline(in, raw);) {
    ++number;
    for (size_t i = 0; i < raw.size(); ++i)
      if (raw[i] == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(raw[i - 1])))) {
        raw.resize(i);
        break;
      }
    const std::string line = trim(raw);
    if (line.empty()) continue;
    ListLine entry{line, std::nullopt};
    const auto split = line.find_last_of(" \t");
    if (split != std::string::npos) {
      const std::string last = line.substr(split + 1);
      if (is_integer(last)) {
        entry.path = trim(line.substr(0, split));
        try {
          entry.label = std::stoi(last);
        } catch (const std::exception&) {
          throw Error(file.string() + ":" + std::to_string(number) + ": label '" + last +
                      "' is out of range");
        }
      } else if (last[0] == '-' && is_integer(last.substr(1))) {
        throw Error(file.string() + ":" + std::to_string(number) + ": label must not be negative");
      }
    }
    lines.push_back(entry);
  }
  return lines;
}

bool is_synset(const std::string& name) {
  static const std::regex pattern("n[0-9]{8}");
  return std::regex_match(name, pattern);
}

std::vector<std::string> read_synsets(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error("cannot read synset list " + file.string());
  std::vector<std::string> synsets;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    line = trim(line);
    if (line.empty()) continue;
    const std::string id = line.substr(0, line.find_first_of(" \t,"));
    if (!is_synset(id))
      throw Error(file.string() + ":" + std::to_string(number) + ": '" + id +
                  "' is not a synset id");
    synsets.push_back(id);
  }
  return synsets;
}

std::vector<fs::path> image_files_below(const fs::path& root) {
  std::vector<fs::path> files;
  for (const auto& entry :
       fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied))
    if (entry.is_regular_file() && looks_like_image(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

Dataset load_list(const fs::path& file) {
  Dataset d{"list", fs::absolute(file).parent_path(), {}};
  for (const auto& line : read_list_file(file)) {
    fs::path p = line.path;
    d.images.push_back({line.path, p.is_absolute() ? p : d.root / p, line.label});
  }
  return d;
}

Dataset load_imagenet(const fs::path& root, const std::vector<std::string>& folders,
                      const DatasetOptions& options) {
  std::vector<std::string> order;
  if (options.synsets) {
    order = read_synsets(*options.synsets);
  } else if (fs::exists(root / "synsets.txt")) {
    order = read_synsets(root / "synsets.txt");
  } else if (fs::exists(root / "LOC_synset_mapping.txt")) {
    order = read_synsets(root / "LOC_synset_mapping.txt");
  } else if (folders.size() == 1000) {
    order = folders;  // all classes present: the sorted folder names are the ILSVRC order
  } else {
    throw Error(root.string() + " looks like the ImageNet validation layout but has " +
                std::to_string(folders.size()) +
                " of 1000 synset folders, so class ids are ambiguous: give the synset order with "
                "--synsets FILE (or put synsets.txt in the folder)");
  }
  std::map<std::string, int> index;
  for (size_t i = 0; i < order.size(); ++i) index[order[i]] = static_cast<int>(i);
  Dataset d{"imagenet", root, {}};
  for (const auto& folder : folders) {
    const auto it = index.find(folder);
    if (it == index.end())
      throw Error(root.string() + ": synset folder " + folder + " is not in the synset list");
    for (const auto& file : image_files_below(root / folder))
      d.images.push_back({fs::relative(file, root).string(), file, it->second});
  }
  return d;
}

}  // namespace

bool Dataset::has_labels() const {
  return std::any_of(images.begin(), images.end(),
                     [](const ImageEntry& e) { return e.label.has_value(); });
}

bool looks_like_image(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const char* known[] = {".jpg",  ".jpeg", ".png", ".bmp", ".tif",
                                ".tiff", ".webp", ".ppm", ".pgm", ".pnm"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return ext == k; });
}

Dataset load_dataset(const fs::path& path, const DatasetOptions& options) {
  if (!fs::exists(path)) throw Error("dataset " + path.string() + " does not exist");
  if (fs::is_regular_file(path)) return load_list(path);
  if (!fs::is_directory(path))
    throw Error("dataset " + path.string() + " is neither a folder nor a list file");
  const fs::path root = fs::absolute(path);

  std::vector<std::string> synset_folders;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && is_synset(entry.path().filename().string()))
      synset_folders.push_back(entry.path().filename().string());
  std::sort(synset_folders.begin(), synset_folders.end());
  if (!synset_folders.empty()) return load_imagenet(root, synset_folders, options);

  Dataset d{"folder", root, {}};
  std::map<fs::path, int> labels;
  if (options.labels) {
    const Dataset listed = load_list(*options.labels);
    for (const auto& e : listed.images)
      if (e.label) labels[fs::weakly_canonical(e.path)] = *e.label;
  }
  for (const auto& file : image_files_below(root)) {
    const auto it = labels.find(fs::weakly_canonical(file));
    d.images.push_back({fs::relative(file, root).string(), file,
                        it == labels.end() ? std::nullopt : std::optional<int>(it->second)});
  }
  if (d.images.empty()) throw Error("dataset folder " + root.string() + " contains no image files");
  return d;
}

}  // namespace deltann
