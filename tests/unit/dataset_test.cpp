// Datasets (dataset.h): list files, plain folders and the ImageNet validation layout.
#include "deltann/dataset.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

std::vector<std::string> keys(const Dataset& d) {
  std::vector<std::string> out;
  for (const auto& e : d.images) out.push_back(e.key);
  return out;
}

std::vector<std::optional<int>> labels(const Dataset& d) {
  std::vector<std::optional<int>> out;
  for (const auto& e : d.images) out.push_back(e.label);
  return out;
}

void touch(const fs::path& path) { test::write_file(path, "x"); }

TEST(ListFile, CommentsBlankLinesLabelsAndAwkwardNames) {
  test::TempDir dir;
  const fs::path list = test::write_file(dir / "val.txt",
                                         "# images for the test\n"
                                         "a.jpg 3\n"
                                         "\n"
                                         "   \t\n"
                                         "sub/my photo#1.png 7   # a space and a '#' in the name\n"
                                         "  c.png  \n"
                                         "d.jpeg\t0\n"
                                         "#e.jpg 5\n");
  const Dataset d = load_dataset(list);
  EXPECT_EQ(d.layout, "list");
  EXPECT_EQ(d.root, fs::absolute(dir.path()));
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a.jpg", "sub/my photo#1.png", "c.png", "d.jpeg"}));
  EXPECT_EQ(labels(d), (std::vector<std::optional<int>>{3, 7, std::nullopt, 0}));
  EXPECT_EQ(d.images[1].path, fs::absolute(dir.path()) / "sub" / "my photo#1.png");
  EXPECT_TRUE(d.has_labels());
}

TEST(ListFile, NameEndingInANumberNeedsNoLabel) {
  test::TempDir dir;
  // "holiday 2019.jpg" has a space, but its last token is not an integer.
  const Dataset d = load_dataset(test::write_file(dir / "l.txt", "holiday 2019.jpg\n"));
  EXPECT_EQ(keys(d), std::vector<std::string>{"holiday 2019.jpg"});
  EXPECT_FALSE(d.has_labels());
}

TEST(ListFile, AbsolutePathsStayAbsolute) {
  test::TempDir dir;
  const fs::path elsewhere = dir / "elsewhere" / "x.png";
  const Dataset d = load_dataset(test::write_file(dir / "l.txt", elsewhere.string() + " 2\n"));
  ASSERT_EQ(d.images.size(), 1u);
  EXPECT_EQ(d.images[0].path, elsewhere);
  EXPECT_EQ(d.images[0].label, 2);
}

TEST(ListFile, NegativeLabelIsReportedWithFileAndLine) {
  test::TempDir dir;
  const fs::path list = test::write_file(dir / "bad.txt", "# header\na.jpg 1\nb.jpg -1\n");
  touch(dir / "a.jpg");
  touch(dir / "b.jpg");
  const Dataset d = load_dataset(list);
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a.jpg", "b.jpg"}));
  EXPECT_TRUE(d.images[0].usable());
  EXPECT_TRUE(Contains(d.images[1].problem, list.string() + ":3:"));
  EXPECT_TRUE(Contains(d.images[1].problem, "negative"));
}

TEST(ListFile, LabelOutOfRangeIsReportedWithFileAndLine) {
  test::TempDir dir;
  touch(dir / "a.jpg");
  const fs::path list = test::write_file(dir / "bad.txt", "a.jpg 99999999999\n");
  const Dataset d = load_dataset(list);
  ASSERT_EQ(d.images.size(), 1u);
  EXPECT_TRUE(Contains(d.images[0].problem, list.string() + ":1:"));
  EXPECT_TRUE(Contains(d.images[0].problem, "99999999999"));
}

// {key: problem} of the entries that cannot be used.
std::map<std::string, std::string> problems(const Dataset& d) {
  std::map<std::string, std::string> out;
  for (const auto& e : d.images)
    if (!e.usable()) out[e.key] = e.problem;
  return out;
}

TEST(ListFile, EntriesThatAreNoImageFilesAreReportedAndTheRestLoads) {
  test::TempDir dir;
  touch(dir / "good.jpg");
  fs::create_symlink("loop_b.jpg", dir / "loop_a.jpg");
  fs::create_symlink("loop_a.jpg", dir / "loop_b.jpg");
  fs::create_symlink("self.png", dir / "self.png");
  ASSERT_EQ(::mkfifo((dir / "pipe.jpg").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", dir / "zero.png");
  fs::create_symlink("gone.png", dir / "dangling.png");
  fs::create_directories(dir / "folder");
  const std::string long_name(300, 'x');  // one component longer than any filesystem allows
  const fs::path list = test::write_file(dir / "list.txt",
                                         "loop_a.jpg 1\nself.png\npipe.jpg\n"
                                         "/dev/zero\nzero.png\nfolder 2\n" +
                                             long_name +
                                             ".jpg\nmissing.jpg\n"
                                             "dangling.png\ngood.jpg 4\n");
  const Dataset d = load_dataset(list);
  EXPECT_EQ(d.layout, "list");
  ASSERT_EQ(d.images.size(), 10u);
  const std::map<std::string, std::string> expected = {
      {"loop_a.jpg", "symlink loop"},
      {"self.png", "symlink loop"},
      {"pipe.jpg", "not a regular file (a FIFO)"},
      {"/dev/zero", "not a regular file (a character device)"},
      {"zero.png", "not a regular file (a character device)"},
      {"folder", "not a regular file (a folder)"},
      {long_name + ".jpg", "name too long"},
      {"missing.jpg", "file does not exist"},
      {"dangling.png", "broken symlink"}};
  EXPECT_EQ(problems(d).size(), expected.size());
  for (const auto& [key, reason] : expected)
    EXPECT_TRUE(Contains(problems(d)[key], reason)) << key << ": " << problems(d)[key];
  EXPECT_TRUE(d.images.back().usable());
  EXPECT_EQ(d.images.back().label, 4);
  EXPECT_EQ(d.images[0].label, 1);  // an unusable entry keeps its label for the record
}

TEST(ListFile, DuplicatesAreReportedAndTheFirstRuns) {
  test::TempDir dir;
  for (const char* name : {"a.jpg", "b.jpg"}) touch(dir / name);
  fs::create_symlink("a.jpg", dir / "also_a.jpg");
  const fs::path list = test::write_file(dir / "list.txt",
                                         "a.jpg 1\n"
                                         "./a.jpg 1\n"
                                         "a.jpg 2\n"
                                         "b.jpg\n"
                                         "b.jpg\n"
                                         "also_a.jpg\n");
  const Dataset d = load_dataset(list);
  // Keys stay unique: a line repeating an earlier one word for word gets its line number.
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a.jpg", "./a.jpg", "a.jpg (line 3)", "b.jpg",
                                               "b.jpg (line 5)", "also_a.jpg"}));
  EXPECT_TRUE(d.images[0].usable());
  EXPECT_EQ(d.images[1].problem, "duplicate of line 1 (a.jpg)");
  EXPECT_TRUE(Contains(d.images[2].problem, "duplicate of line 1 (a.jpg)"));
  EXPECT_TRUE(Contains(d.images[2].problem, "conflicting label: 2 here, 1 on line 1"));
  EXPECT_TRUE(d.images[3].usable());
  EXPECT_EQ(d.images[4].problem, "duplicate of line 4 (b.jpg)");
  EXPECT_EQ(d.images[5].problem, "duplicate of line 1 (a.jpg)");  // the same file by a symlink
  // Each duplicate names the key of the entry that runs in its place.
  std::vector<std::string> firsts;
  for (const auto& image : d.images) firsts.push_back(image.duplicate_of);
  EXPECT_EQ(firsts, (std::vector<std::string>{"", "a.jpg", "a.jpg", "", "b.jpg", "a.jpg"}));
}

TEST(ListFile, BinaryFileIsRefusedWithoutPrintingIt) {
  test::TempDir dir;
  std::string bytes = "a.jpg 1\n";
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  const fs::path blob = test::write_file(dir / "data.bin", bytes);
  const std::string message = message_of<Error>([&] { load_dataset(blob); });
  EXPECT_TRUE(Contains(message, blob.string()));
  EXPECT_TRUE(Contains(message, "not a text list file (byte 0x00 at offset 8)"));
  for (unsigned char c : message) EXPECT_TRUE(c >= 0x20 && c < 0x7F) << int{c};
}

TEST(ListFile, TextStartingLikeAnImageSignatureIsAList) {
  test::TempDir dir;
  touch(dir / "BMW.jpg");
  const Dataset d = load_dataset(test::write_file(dir / "cars", "BMW.jpg 3\n"));  // "BM": BMP
  EXPECT_EQ(d.layout, "list");
  EXPECT_EQ(keys(d), std::vector<std::string>{"BMW.jpg"});
}

TEST(SingleImage, AnImageFileIsADatasetOfOne) {
  test::TempDir dir;
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  for (const char* name : {"photo.jpg", "photo.PNG", "no_extension"}) {
    const fs::path path = test::write_file(dir / "sub" / name, png);
    const Dataset d = load_dataset(path);
    EXPECT_EQ(d.layout, "image") << name;
    EXPECT_EQ(d.root, fs::absolute(dir / "sub"));
    EXPECT_EQ(keys(d), std::vector<std::string>{name});
    EXPECT_EQ(d.images[0].path, fs::absolute(path));
    EXPECT_TRUE(d.images[0].usable());
  }
}

TEST(PlainFolder, RecursiveSortedAndOnlyImages) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  for (const char* name : {"b.png", "a.jpg", "sub/c.JPEG", "sub/deeper/d.webp", "notes.txt",
                           "sub/readme.md", "model.onnx", "e.Bmp"})
    touch(root / name);
  const Dataset d = load_dataset(root);
  EXPECT_EQ(d.layout, "folder");
  EXPECT_EQ(d.root, fs::absolute(root));
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a.jpg", "b.png", "e.Bmp", "sub/c.JPEG",
                                               "sub/deeper/d.webp"}));
  EXPECT_EQ(d.images[3].path, fs::absolute(root) / "sub" / "c.JPEG");
  EXPECT_FALSE(d.has_labels());
}

TEST(PlainFolder, LabelsFromAListFile) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  for (const char* name : {"a.jpg", "b.png", "sub/c.png"}) touch(root / name);
  // Paths in the list are relative to the list's own folder, not to the dataset.
  const fs::path list = test::write_file(dir / "meta" / "labels.txt",
                                         "../images/a.jpg 5\n"
                                         "../images/sub/c.png 9\n"
                                         "../images/not-there.png 1\n");
  DatasetOptions options;
  options.labels = list;
  const Dataset d = load_dataset(root, options);
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a.jpg", "b.png", "sub/c.png"}));
  EXPECT_EQ(labels(d), (std::vector<std::optional<int>>{5, std::nullopt, 9}));
  EXPECT_TRUE(d.has_labels());
}

TEST(PlainFolder, BadEntriesAreReportedAndTheScanGoesOn) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  touch(root / "a_good.png");
  touch(root / "sub" / "z_good.jpg");
  fs::create_symlink("loop_b.jpg", root / "loop_a.jpg");
  fs::create_symlink("loop_a.jpg", root / "loop_b.jpg");
  fs::create_symlink("self.png", root / "self.png");
  fs::create_symlink("link", root / "link");  // a loop with no image extension
  ASSERT_EQ(::mkfifo((root / "pipe.jpg").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", root / "zero.png");
  fs::create_symlink(root / "sub", root / "sub_link");
  touch(root / "anim.gif");
  touch(root / "notes.txt");
  const Dataset d = load_dataset(root);
  EXPECT_EQ(keys(d),
            (std::vector<std::string>{"a_good.png", "anim.gif", "loop_a.jpg", "loop_b.jpg",
                                      "pipe.jpg", "self.png", "sub/z_good.jpg", "zero.png"}));
  const std::map<std::string, std::string> expected = {
      {"loop_a.jpg", "symlink loop"},
      {"loop_b.jpg", "symlink loop"},
      {"self.png", "symlink loop"},
      {"pipe.jpg", "not a regular file (a FIFO)"},
      {"zero.png", "not a regular file (a character device)"}};
  EXPECT_EQ(problems(d), expected);
  // What the scan did not take is named, with the extensions it takes.
  ASSERT_EQ(d.notes.size(), 1u);
  const std::string& note = d.notes[0];
  EXPECT_TRUE(Contains(note, root.string())) << note;
  EXPECT_TRUE(Contains(note, image_extensions())) << note;
  EXPECT_TRUE(Contains(note, "3 other files were not taken")) << note;
  EXPECT_TRUE(Contains(note, "link (symlink loop)")) << note;
  EXPECT_TRUE(Contains(note, "notes.txt")) << note;
  EXPECT_TRUE(Contains(note, "sub_link (symlink to a folder, not followed)")) << note;
}

TEST(PlainFolder, ManyFilesNotTakenAreCounted) {
  test::TempDir dir;
  touch(dir / "images" / "a.png");
  for (int i = 0; i < 25; ++i) touch(dir / "images" / ("n" + std::to_string(100 + i) + ".xml"));
  const Dataset d = load_dataset(dir / "images");
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_TRUE(Contains(d.notes[0], "25 other files were not taken: n100.xml, ")) << d.notes[0];
  EXPECT_TRUE(Contains(d.notes[0], "n119.xml and 5 more")) << d.notes[0];
}

TEST(PlainFolder, DuplicateLinesInTheLabelsFileAreNoted) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  for (const char* name : {"a.jpg", "b.png", "c.png"}) touch(root / name);
  const fs::path list = test::write_file(dir / "labels.txt",
                                         "images/a.jpg 5\n"
                                         "images/b.png 1\n"
                                         "images/a.jpg 6\n"
                                         "images/b.png 1\n"
                                         "images/c.png -2\n");
  DatasetOptions options;
  options.labels = list;
  const Dataset d = load_dataset(root, options);
  EXPECT_EQ(labels(d), (std::vector<std::optional<int>>{5, 1, std::nullopt}));
  EXPECT_TRUE(Contains(problems(d)["c.png"], list.string() + ":5: label -2 is negative"));
  ASSERT_EQ(d.notes.size(), 2u);
  EXPECT_TRUE(Contains(d.notes[0],
                       "line 3 (images/a.jpg) repeats line 1 (images/a.jpg) with "
                       "another label; the first is used"))
      << d.notes[0];
  EXPECT_TRUE(Contains(d.notes[1], "line 4 (images/b.png) repeats line 2")) << d.notes[1];
  EXPECT_FALSE(Contains(d.notes[1], "another label")) << d.notes[1];
}

TEST(PlainFolder, FolderWithoutImagesIsAnError) {
  test::TempDir dir;
  touch(dir / "empty" / "readme.txt");
  const std::string message = message_of<Error>([&] { load_dataset(dir / "empty"); });
  EXPECT_TRUE(Contains(message, "no image files"));
  EXPECT_TRUE(Contains(message, "1 other file was not taken: readme.txt"));
}

// val/n01440764/{x,y}.JPEG and val/n01443537/z.JPEG, plus a stray file at the top.
fs::path imagenet_layout(const test::TempDir& dir) {
  const fs::path root = dir / "val";
  touch(root / "n01440764" / "y.JPEG");
  touch(root / "n01440764" / "x.JPEG");
  touch(root / "n01443537" / "z.JPEG");
  touch(root / "n01443537" / "notes.txt");
  return root;
}

TEST(ImageNetLayout, ClassIdsFollowSynsetsTxt) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "synsets.txt", "n01443537\nn01440764\n");  // goldfish first
  const Dataset d = load_dataset(root);
  EXPECT_EQ(d.layout, "imagenet");
  EXPECT_EQ(keys(d),
            (std::vector<std::string>{"n01440764/x.JPEG", "n01440764/y.JPEG", "n01443537/z.JPEG"}));
  EXPECT_EQ(labels(d), (std::vector<std::optional<int>>{1, 1, 0}));
}

TEST(ImageNetLayout, LocSynsetMappingIsRead) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "LOC_synset_mapping.txt",
                   "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n");
  EXPECT_EQ(labels(load_dataset(root)), (std::vector<std::optional<int>>{0, 0, 1}));
}

TEST(ImageNetLayout, ExplicitSynsetsOptionWins) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "synsets.txt", "n01443537\nn01440764\n");
  DatasetOptions options;
  options.synsets = test::write_file(dir / "order.txt",
                                     "n01234567 something else\n"
                                     "n01440764 tench, Tinca tinca\n"
                                     "\n"
                                     "n01443537 goldfish, Carassius auratus\n");
  EXPECT_EQ(labels(load_dataset(root, options)), (std::vector<std::optional<int>>{1, 1, 2}));
}

TEST(ImageNetLayout, SomeFoldersWithoutASynsetListIsAnError) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  const std::string message = message_of<Error>([&] { load_dataset(root); });
  EXPECT_TRUE(Contains(message, root.string()));
  EXPECT_TRUE(Contains(message, "2 of 1000"));
  EXPECT_TRUE(Contains(message, "--synsets"));
}

TEST(ImageNetLayout, FolderMissingFromTheSynsetListIsAnError) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "synsets.txt", "n01440764\n");
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(root); }), "n01443537"));
}

TEST(ImageNetLayout, MalformedSynsetListNamesFileAndLine) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  const fs::path synsets = test::write_file(root / "synsets.txt", "n01440764\ntench\n");
  const std::string message = message_of<Error>([&] { load_dataset(root); });
  EXPECT_TRUE(Contains(message, synsets.string() + ":2:"));
  EXPECT_TRUE(Contains(message, "'tench'"));
}

// An option that does not apply to the dataset's layout is refused, not silently ignored.
TEST(Dataset, OptionsThatDoNotApplyAreRefused) {
  test::TempDir dir;
  const fs::path labels = test::write_file(dir / "labels.txt", "a.png 1\n");
  const fs::path list = test::write_file(dir / "list.txt", "a.png 1\n");
  test::write_file(dir / "plain" / "a.png", "");
  fs::create_directories(dir / "val" / "n01440764");
  DatasetOptions with_labels;
  with_labels.labels = labels;
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(list, with_labels); }),
                       "--labels does not apply to " + list.string()));
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(dir / "val", with_labels); }),
                       "synset folders give the labels"));
  DatasetOptions with_synsets;
  with_synsets.synsets = labels;
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(list, with_synsets); }),
                       "--synsets does not apply"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(dir / "plain", with_synsets); }),
                       "no synset folders"));
}

TEST(Dataset, MissingPathIsAnError) {
  test::TempDir dir;
  const fs::path missing = dir / "nowhere";
  const std::string message = message_of<Error>([&] { load_dataset(missing); });
  EXPECT_TRUE(Contains(message, missing.string()));
  EXPECT_TRUE(Contains(message, "does not exist"));
}

TEST(Dataset, DatasetPathThatIsNoFolderOrFileSaysWhy) {
  test::TempDir dir;
  fs::create_symlink("loop", dir / "loop");
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0600), 0);
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(dir / "loop"); }),
                       (dir / "loop").string() + ": symlink loop"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(dir / "pipe"); }),
                       (dir / "pipe").string() + ": not a regular file (a FIFO)"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset("/dev/zero"); }),
                       "/dev/zero: not a regular file (a character device)"));
  DatasetOptions options;
  options.labels = dir / "pipe";
  touch(dir / "images" / "a.png");
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_dataset(dir / "images", options); }),
                       "labels file " + (dir / "pipe").string() + ": not a regular file"));
}

TEST(ImageNetLayout, SymlinkLoopInASynsetFolderIsReported) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "synsets.txt", "n01440764\nn01443537\n");
  fs::create_symlink("w.JPEG", root / "n01440764" / "w.JPEG");
  const Dataset d = load_dataset(root);
  EXPECT_EQ(keys(d), (std::vector<std::string>{"n01440764/w.JPEG", "n01440764/x.JPEG",
                                               "n01440764/y.JPEG", "n01443537/z.JPEG"}));
  EXPECT_EQ(problems(d),
            (std::map<std::string, std::string>{{"n01440764/w.JPEG", "symlink loop"}}));
  EXPECT_EQ(labels(d), (std::vector<std::optional<int>>{0, 0, 0, 1}));
  ASSERT_EQ(d.notes.size(), 1u);  // notes.txt in n01443537
  EXPECT_TRUE(Contains(d.notes[0], "notes.txt"));
}

TEST(ImageNetLayout, EntriesBesideTheSynsetFoldersAreNamed) {
  test::TempDir dir;
  const fs::path root = imagenet_layout(dir);
  test::write_file(root / "synsets.txt", "n01440764\nn01443537\n");
  touch(root / "extra" / "a.jpg");
  touch(root / "stray.jpg");
  const Dataset d = load_dataset(root);
  EXPECT_EQ(d.images.size(), 3u);
  ASSERT_EQ(d.notes.size(), 2u);
  EXPECT_EQ(d.notes[0], root.string() +
                            ": the ImageNet layout reads the synset folders only; 2 other entries "
                            "were not taken: extra/, stray.jpg");
  EXPECT_TRUE(Contains(d.notes[1], "1 other file was not taken: notes.txt")) << d.notes[1];
}

TEST(Filesystem, ErrorsInPlainWords) {
  EXPECT_EQ(filesystem_reason(std::make_error_code(std::errc::too_many_symbolic_link_levels)),
            "symlink loop");
  EXPECT_EQ(filesystem_reason(std::make_error_code(std::errc::filename_too_long)), "name too long");
  const fs::filesystem_error error("status", "/a/loop", "/b",
                                   std::make_error_code(std::errc::too_many_symbolic_link_levels));
  EXPECT_EQ(describe(error), "symlink loop: /a/loop, /b");
}

TEST(Dataset, LooksLikeImageIgnoresCase) {
  for (const char* name : {"a.jpg", "a.JPG", "a.jpeg", "a.Png", "a.bmp", "a.tif", "a.TIFF",
                           "a.webp", "a.ppm", "a.pgm", "a.pnm", "a.gif", "a.GIF"})
    EXPECT_TRUE(looks_like_image(name)) << name;
  for (const char* name : {"a.txt", "a", "jpg", "a.jpg.txt", "a.onnx", ".png.bak"})
    EXPECT_FALSE(looks_like_image(name)) << name;
}

}  // namespace
}  // namespace deltann
