#include "deltann/dataset.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "deltann/error.h"
#include "deltann/preprocess.h"

namespace deltann {
namespace fs = std::filesystem;
namespace {

// What a folder scan takes. GIF is among them so that a GIF is reported with the decoder's
// verdict rather than passed over.
constexpr const char* kImageExtensions[] = {".bmp", ".gif", ".jpeg", ".jpg",  ".pgm", ".png",
                                            ".pnm", ".ppm", ".tif",  ".tiff", ".webp"};

// A list file larger than this is not a list someone wrote (ImageNet's 50,000 lines are ~2 MB).
constexpr std::uintmax_t kMaxListBytes = 256ull * 1024 * 1024;

// At most this many names of files a folder scan did not take are listed in its note.
constexpr size_t kNamesListed = 20;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool is_integer(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// A control byte other than the white space text files hold: the mark of a binary file.
bool is_binary_byte(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') || c == 0x7F;
}

// Offset of the first byte of `text` that text does not contain, or npos.
size_t first_binary_byte(const std::string& text) {
  const auto at = std::find_if(text.begin(), text.end(), [](char c) {
    return is_binary_byte(static_cast<unsigned char>(c));
  });
  return at == text.end() ? std::string::npos : static_cast<size_t>(at - text.begin());
}

std::string read_all(const fs::path& file, const std::string& what) {
  if (const std::string problem = file_problem(file); !problem.empty())
    throw Error(what + " " + file.string() + ": " + problem);
  std::error_code ec;
  if (const auto size = fs::file_size(file, ec); !ec && size > kMaxListBytes)
    throw Error(what + " " + file.string() + " is larger than " +
                std::to_string(kMaxListBytes >> 20) + " MiB: not a list file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read " + what + " " + file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The text of a list or synset file. A binary file is refused by name and offset, never by
// echoing its bytes, which would garble the terminal.
std::string read_text_file(const fs::path& file, const std::string& what) {
  std::string text = read_all(file, what);
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // UTF-8 byte-order mark
  if (const size_t at = first_binary_byte(text); at != std::string::npos) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[at]));
    throw Error(file.string() + " is not a text " + what + " (byte " + byte + " at offset " +
                std::to_string(at) + "); give a folder, a list file of image paths or an image");
  }
  return text;
}

struct ListLine {
  int number = 0;  // 1-based line number in the file
  std::string path;
  std::optional<int> label;
  std::string label_problem;  // a label that is not a class id
};

// One `path [label]` per line. A '#' at the start of a line or after whitespace starts a comment,
// so file names may contain '#'. The label is the last whitespace-separated token when it is an
// integer, so file names may contain spaces.
std::vector<ListLine> read_list_file(const fs::path& file, const std::string& what) {
  std::istringstream in(read_text_file(file, what));
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
    ListLine entry{number, line, std::nullopt, ""};
    const auto split = line.find_last_of(" \t");
    if (split != std::string::npos) {
      const std::string last = line.substr(split + 1);
      const bool negative = last[0] == '-' && is_integer(last.substr(1));
      if (is_integer(last) || negative) entry.path = trim(line.substr(0, split));
      const std::string where = file.string() + ":" + std::to_string(number) + ": ";
      if (negative) {
        entry.label_problem = where + "label " + last + " is negative";
      } else if (is_integer(last)) {
        try {
          entry.label = std::stoi(last);
        } catch (const std::exception&) {
          entry.label_problem = where + "label " + last + " is out of range";
        }
      }
    }
    lines.push_back(entry);
  }
  return lines;
}

// The file a path names, for finding the same image named twice: symlinks and `.`/`..` resolved
// where the filesystem allows, else the normalised path.
std::string identity(const fs::path& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return (ec ? path.lexically_normal() : canonical).string();
}

bool is_synset(const std::string& name) {
  static const std::regex pattern("n[0-9]{8}");
  return std::regex_match(name, pattern);
}

std::vector<std::string> read_synsets(const fs::path& file) {
  std::istringstream in(read_text_file(file, "synset list"));
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

// What a folder scan found below `root`: the entries with an image extension (usable or not) and
// every other thing it did not take, as "name" or "name (reason)".
struct FolderScan {
  std::vector<ImageEntry> entries;
  std::vector<std::string> not_taken;
};

// Walks `folder` and its sub-folders without following symlinks to folders (which could loop).
// Every failure is kept with the name it concerns, so one bad entry never ends the scan.
void scan(const fs::path& root, const fs::path& folder, FolderScan& found) {
  const auto name = [&](const fs::path& p) { return p.lexically_relative(root).string(); };
  std::error_code ec;
  fs::directory_iterator it(folder, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path path = it->path();
    std::error_code kind_ec;
    const fs::file_status link = it->symlink_status(kind_ec);
    if (!kind_ec && fs::is_directory(link)) {
      scan(root, path, found);
    } else if (looks_like_image(path)) {
      found.entries.push_back({name(path), path, std::nullopt, file_problem(path)});
    } else if (fs::is_symlink(link) && fs::is_directory(fs::status(path, kind_ec))) {
      found.not_taken.push_back(name(path) + " (symlink to a folder, not followed)");
    } else {
      const std::string problem = file_problem(path);
      found.not_taken.push_back(name(path) + (problem.empty() ? "" : " (" + problem + ")"));
    }
  }
  if (ec)
    found.not_taken.push_back(name(folder) + "/ (cannot be read: " + filesystem_reason(ec) + ")");
}

FolderScan scan_folder(const fs::path& root) {
  FolderScan found;
  scan(root, root, found);
  const auto by_key = [](const ImageEntry& a, const ImageEntry& b) { return a.key < b.key; };
  std::sort(found.entries.begin(), found.entries.end(), by_key);
  std::sort(found.not_taken.begin(), found.not_taken.end());
  return found;
}

// "a, b, c" up to kNamesListed names, then "and N more".
std::string names_text(const std::vector<std::string>& names) {
  std::string listed;
  for (size_t i = 0; i < names.size() && i < kNamesListed; ++i)
    listed += (i ? ", " : "") + names[i];
  if (names.size() > kNamesListed)
    listed += " and " + std::to_string(names.size() - kNamesListed) + " more";
  return listed;
}

// "1 other file was" / "3 other files were".
std::string count_text(size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one + " was" : many + " were");
}

// "FOLDER: a folder scan takes .bmp ...; 2 other files were not taken: a.txt, b (symlink loop)".
std::string not_taken_note(const fs::path& folder, const std::vector<std::string>& names) {
  return folder.string() + ": a folder scan takes " + image_extensions() + "; " +
         count_text(names.size(), "other file", "other files") + " not taken: " + names_text(names);
}

void add_scan(Dataset& d, const fs::path& folder, FolderScan found) {
  for (auto& entry : found.entries) d.images.push_back(std::move(entry));
  if (!found.not_taken.empty()) d.notes.push_back(not_taken_note(folder, found.not_taken));
}

// "line 1 (a.jpg)", for messages about a list's lines.
std::string line_text(const ListLine& line) {
  return "line " + std::to_string(line.number) + " (" + line.path + ")";
}

std::string duplicate_problem(const ListLine& line, const ListLine& earlier) {
  std::string problem = "duplicate of " + line_text(earlier);
  if (line.label && earlier.label && *line.label != *earlier.label)
    problem += " with a conflicting label: " + std::to_string(*line.label) + " here, " +
               std::to_string(*earlier.label) + " on line " + std::to_string(earlier.number) +
               ", whose label is used";
  return problem;
}

Dataset load_list(const fs::path& file) {
  Dataset d{"list", fs::absolute(file).parent_path(), {}, {}};
  const std::vector<ListLine> lines = read_list_file(file, "list file");
  std::map<std::string, size_t> first_naming;  // identity -> index of the first usable line
  std::set<std::string> keys;
  for (size_t i = 0; i < lines.size(); ++i) {
    const ListLine& line = lines[i];
    const fs::path named = line.path;
    ImageEntry entry{line.path, named.is_absolute() ? named : d.root / named, line.label,
                     line.label_problem};
    if (entry.problem.empty()) entry.problem = file_problem(entry.path);
    // The first usable line naming an image runs; a later one is reported, so that no image runs
    // (and is counted) twice and no ground truth is silently replaced. An entry that is unusable
    // anyway keeps its own reason.
    if (entry.problem.empty()) {
      const auto [first, fresh] = first_naming.emplace(identity(entry.path), i);
      if (!fresh) {
        entry.problem = duplicate_problem(line, lines[first->second]);
        entry.duplicate_of = d.images[first->second].key;  // one entry per line
      }
    }
    if (!keys.insert(entry.key).second) entry.key += " (line " + std::to_string(line.number) + ")";
    d.images.push_back(std::move(entry));
  }
  return d;
}

Dataset load_image(const fs::path& file) {
  const fs::path path = fs::absolute(file);
  return {"image", path.parent_path(), {{path.filename().string(), path, std::nullopt, ""}}, {}};
}

// A regular file given as the dataset is one image when its extension says so or, for a file
// that is not text, when its first bytes are an image signature; otherwise it must be a list.
bool is_single_image(const fs::path& file) {
  if (looks_like_image(file)) return true;
  std::ifstream in(file, std::ios::binary);
  std::string head(64, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return first_binary_byte(head) != std::string::npos &&
         !image_format_of(reinterpret_cast<const unsigned char*>(head.data()), head.size()).empty();
}

// `others`: the entries beside the synset folders, which the layout does not read.
Dataset load_imagenet(const fs::path& root, const std::vector<std::string>& folders,
                      std::vector<std::string> others, const DatasetOptions& options) {
  // A synset list that is there but unreadable (a symlink loop, say) is reported, not passed over.
  const auto present = [](const fs::path& p) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(p, ec));
  };
  std::vector<std::string> order;
  if (options.synsets) {
    order = read_synsets(*options.synsets);
  } else if (present(root / "synsets.txt")) {
    order = read_synsets(root / "synsets.txt");
  } else if (present(root / "LOC_synset_mapping.txt")) {
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
  Dataset d{"imagenet", root, {}, {}};
  std::erase_if(others, [](const std::string& name) {
    return name == "synsets.txt" || name == "LOC_synset_mapping.txt";
  });
  if (!others.empty())
    d.notes.push_back(root.string() + ": the ImageNet layout reads the synset folders only; " +
                      count_text(others.size(), "other entry", "other entries") +
                      " not taken: " + names_text(others));
  for (const auto& folder : folders) {
    const auto it = index.find(folder);
    if (it == index.end())
      throw Error(root.string() + ": synset folder " + folder + " is not in the synset list");
    FolderScan found = scan_folder(root / folder);
    for (auto& entry : found.entries) {
      entry.key = folder + "/" + entry.key;
      entry.label = it->second;
    }
    add_scan(d, root / folder, std::move(found));
  }
  return d;
}

// A label from a --labels file, or why the line's label cannot be used.
struct ListedLabel {
  std::optional<int> label;
  std::string problem;
};

// The labels a --labels file gives, by image identity. The first line naming an image gives its
// label; later lines naming it again are noted.
std::map<std::string, ListedLabel> read_labels(const fs::path& file,
                                               std::vector<std::string>& notes) {
  std::map<std::string, ListedLabel> labels;
  std::map<std::string, ListLine> first_naming;
  const fs::path base = fs::absolute(file).parent_path();
  for (const auto& line : read_list_file(file, "labels file")) {
    if (!line.label && line.label_problem.empty()) continue;
    const fs::path named = line.path;
    const std::string id = identity(named.is_absolute() ? named : base / named);
    const auto [first, fresh] = first_naming.emplace(id, line);
    if (fresh) {
      labels[id] = {line.label, line.label_problem};
    } else {
      notes.push_back(
          file.string() + ": line " + std::to_string(line.number) + " (" + line.path +
          ") repeats " + line_text(first->second) +
          (line.label != first->second.label ? " with another label; the first is used" : ""));
    }
  }
  return labels;
}

Dataset load_folder(const fs::path& root, const DatasetOptions& options) {
  Dataset d{"folder", root, {}, {}};
  std::map<std::string, ListedLabel> labels;
  if (options.labels) labels = read_labels(*options.labels, d.notes);
  FolderScan found = scan_folder(root);
  for (auto& entry : found.entries) {
    const auto it = labels.find(identity(entry.path));
    if (it == labels.end()) continue;
    entry.label = it->second.label;
    if (entry.problem.empty()) entry.problem = it->second.problem;
  }
  if (found.entries.empty()) {
    std::string message = "dataset folder " + root.string() + " contains no image files";
    if (!found.not_taken.empty()) message += " (" + not_taken_note(root, found.not_taken) + ")";
    throw Error(message);
  }
  add_scan(d, root, std::move(found));
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
  return std::any_of(std::begin(kImageExtensions), std::end(kImageExtensions),
                     [&](const char* known) { return ext == known; });
}

std::string image_extensions() {
  std::string text;
  for (const char* ext : kImageExtensions) text += (text.empty() ? "" : " ") + std::string(ext);
  return text;
}

std::string file_problem(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  switch (status.type()) {
    case fs::file_type::regular:
      return "";
    case fs::file_type::not_found: {
      std::error_code link_ec;
      return fs::is_symlink(fs::symlink_status(path, link_ec))
                 ? "broken symlink (its target does not exist)"
                 : "file does not exist";
    }
    case fs::file_type::directory:
      return "not a regular file (a folder)";
    case fs::file_type::fifo:
      return "not a regular file (a FIFO)";
    case fs::file_type::character:
      return "not a regular file (a character device)";
    case fs::file_type::block:
      return "not a regular file (a block device)";
    case fs::file_type::socket:
      return "not a regular file (a socket)";
    default:
      return ec ? filesystem_reason(ec) : "not a regular file";
  }
}

Dataset load_dataset(const fs::path& path, const DatasetOptions& options) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  // An option that does not apply to the layout would be ignored: say so instead.
  const auto refuse = [&](const char* option, const std::string& why) {
    throw Error(std::string(option) + " does not apply to " + path.string() + ": " + why);
  };
  if (fs::is_regular_file(status)) {
    const bool image = is_single_image(path);
    if (options.labels)
      refuse("--labels", image ? "an image file; give a list file (path label) to label it"
                               : "a list file carries its labels on its lines (path label)");
    if (options.synsets)
      refuse("--synsets", "it orders the synset folders of the ImageNet layout, and " +
                              path.string() + " is a file");
    return image ? load_image(path) : load_list(path);
  }
  if (status.type() == fs::file_type::not_found)
    throw Error("dataset " + path.string() + " does not exist");
  if (!fs::is_directory(status))
    throw Error("dataset " + path.string() + ": " + file_problem(path) +
                "; give a folder, a list file or an image file");
  const fs::path root = fs::absolute(path);

  std::vector<std::string> synset_folders, others;
  fs::directory_iterator it(root, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code kind_ec;
    const bool folder = it->is_directory(kind_ec);
    if (folder && is_synset(name))
      synset_folders.push_back(name);
    else
      others.push_back(folder ? name + "/" : name);
  }
  if (ec) throw Error("cannot read dataset folder " + root.string() + ": " + filesystem_reason(ec));
  std::sort(synset_folders.begin(), synset_folders.end());
  std::sort(others.begin(), others.end());
  if (!synset_folders.empty()) {
    if (options.labels)
      refuse("--labels", "in the ImageNet layout the synset folders give the labels");
    return load_imagenet(root, synset_folders, std::move(others), options);
  }
  if (options.synsets) refuse("--synsets", "the folder has no synset folders (n01440764, ...)");
  return load_folder(root, options);
}

}  // namespace deltann
