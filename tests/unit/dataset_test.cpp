// Datasets (dataset.h): list files, plain folders and the ImageNet validation layout.
#include "deltann/dataset.h"

#include <gtest/gtest.h>

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

TEST(ListFile, NegativeLabelNamesFileAndLine) {
  test::TempDir dir;
  const fs::path list = test::write_file(dir / "bad.txt", "# header\na.jpg 1\nb.jpg -1\n");
  const std::string message = message_of<Error>([&] { load_dataset(list); });
  EXPECT_TRUE(Contains(message, list.string() + ":3:"));
  EXPECT_TRUE(Contains(message, "negative"));
}

TEST(ListFile, LabelOutOfRangeNamesFileAndLine) {
  test::TempDir dir;
  const fs::path list = test::write_file(dir / "bad.txt", "a.jpg 99999999999\n");
  const std::string message = message_of<Error>([&] { load_dataset(list); });
  EXPECT_TRUE(Contains(message, list.string() + ":1:"));
  EXPECT_TRUE(Contains(message, "99999999999"));
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

TEST(PlainFolder, FolderWithoutImagesIsAnError) {
  test::TempDir dir;
  touch(dir / "empty" / "readme.txt");
  const std::string message = message_of<Error>([&] { load_dataset(dir / "empty"); });
  EXPECT_TRUE(Contains(message, "no image files"));
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

TEST(Dataset, MissingPathIsAnError) {
  test::TempDir dir;
  const fs::path missing = dir / "nowhere";
  const std::string message = message_of<Error>([&] { load_dataset(missing); });
  EXPECT_TRUE(Contains(message, missing.string()));
  EXPECT_TRUE(Contains(message, "does not exist"));
}

TEST(Dataset, LooksLikeImageIgnoresCase) {
  for (const char* name : {"a.jpg", "a.JPG", "a.jpeg", "a.Png", "a.bmp", "a.tif", "a.TIFF",
                           "a.webp", "a.ppm", "a.pgm", "a.pnm"})
    EXPECT_TRUE(looks_like_image(name)) << name;
  for (const char* name : {"a.txt", "a", "jpg", "a.jpg.txt", "a.onnx", ".png.bak"})
    EXPECT_FALSE(looks_like_image(name)) << name;
}

}  // namespace
}  // namespace deltann
