// Decoding and preprocessing (preprocess.h): exact arithmetic on tiny hand-made images, the
// errors a user sees for bad files, and the on-disk tensor cache.
#include "deltann/preprocess.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

// A spec that leaves pixel values untouched: scale 1, mean 0, std 1, no resize.
InputSpec raw_spec(int size, Layout layout = Layout::NCHW) {
  InputSpec spec;
  spec.shape = layout == Layout::NCHW ? std::vector<int64_t>{1, 3, size, size}
                                      : std::vector<int64_t>{1, size, size, 3};
  spec.layout = layout;
  spec.resize = size;
  spec.crop = size;
  spec.scale = 1.0f;
  spec.mean = {0.0f, 0.0f, 0.0f};
  spec.std = {1.0f, 1.0f, 1.0f};
  return spec;
}

// A 2x2 RGB image, rows of interleaved R,G,B:
//   (x=0,y=0) 10,20,30    (x=1,y=0) 40,50,60
//   (x=0,y=1) 70,80,90    (x=1,y=1) 100,110,120
const std::vector<unsigned char> kTwoByTwo = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};

// One channel of an NCHW tensor, as a flat row-major vector.
std::vector<float> plane(const Tensor& t, int channel) {
  const auto size = static_cast<size_t>(t.shape[2] * t.shape[3]);
  return {t.data.begin() + static_cast<std::ptrdiff_t>(channel * size),
          t.data.begin() + static_cast<std::ptrdiff_t>((channel + 1) * size)};
}

TEST(PreprocessPixels, NchwPlacesEachChannelInItsOwnPlane) {
  const Tensor t = preprocess_pixels(kTwoByTwo.data(), 2, 2, raw_spec(2));
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 3, 2, 2}));
  EXPECT_EQ(t.data, (std::vector<float>{10, 40, 70, 100,     // R plane, row by row
                                        20, 50, 80, 110,     // G
                                        30, 60, 90, 120}));  // B
}

TEST(PreprocessPixels, NhwcKeepsChannelsInterleaved) {
  const Tensor t = preprocess_pixels(kTwoByTwo.data(), 2, 2, raw_spec(2, Layout::NHWC));
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_EQ(t.data, (std::vector<float>{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}));
}

TEST(PreprocessPixels, BgrReversesTheChannels) {
  InputSpec spec = raw_spec(2);
  spec.channel_order = ChannelOrder::BGR;
  EXPECT_EQ(preprocess_pixels(kTwoByTwo.data(), 2, 2, spec).data,
            (std::vector<float>{30, 60, 90, 120, 20, 50, 80, 110, 10, 40, 70, 100}));
  spec = raw_spec(2, Layout::NHWC);
  spec.channel_order = ChannelOrder::BGR;
  EXPECT_EQ(preprocess_pixels(kTwoByTwo.data(), 2, 2, spec).data,
            (std::vector<float>{30, 20, 10, 60, 50, 40, 90, 80, 70, 120, 110, 100}));
}

TEST(PreprocessPixels, ScaleMeanStdArithmetic) {
  // Powers of two keep every step exact: (pixel * 0.5 - mean[c]) / std[c].
  InputSpec spec = raw_spec(2);
  spec.scale = 0.5f;
  spec.mean = {1.0f, 2.0f, 3.0f};
  spec.std = {2.0f, 4.0f, 8.0f};
  EXPECT_EQ(preprocess_pixels(kTwoByTwo.data(), 2, 2, spec).data,
            (std::vector<float>{2, 9.5f, 17, 24.5f,              // (R/2 - 1) / 2
                                2, 5.75f, 9.5f, 13.25f,          // (G/2 - 2) / 4
                                1.5f, 3.375f, 5.25f, 7.125f}));  // (B/2 - 3) / 8
}

TEST(PreprocessPixels, MeanAndStdFollowTheOutputChannelOrder) {
  // With BGR, mean[0] and std[0] apply to the first output channel, which is blue (as in Caffe
  // specs, whose means are written in BGR order).
  InputSpec spec = raw_spec(2);
  spec.channel_order = ChannelOrder::BGR;
  spec.mean = {30.0f, 0.0f, 10.0f};
  spec.std = {2.0f, 1.0f, 1.0f};
  EXPECT_EQ(preprocess_pixels(kTwoByTwo.data(), 2, 2, spec).data,
            (std::vector<float>{0, 15, 30, 45, 20, 50, 80, 110, 0, 30, 60, 90}));
}

TEST(PreprocessPixels, ImageNetNormalisation) {
  const unsigned char white_and_black[] = {255, 255, 255, 0, 0, 0};
  InputSpec spec;  // ImageNet defaults
  spec.shape = {1, 3, 1, 1};
  spec.resize = 1;
  spec.crop = 1;
  // A 2x1 image: the shorter side is already 1, so the crop keeps the middle column, x = 0.
  const Tensor t = preprocess_pixels(white_and_black, 2, 1, spec);
  ASSERT_EQ(t.data.size(), 3u);
  EXPECT_NEAR(t.data[0], (1.0 - 0.485) / 0.229, 1e-5);  // 2.2489...
  EXPECT_NEAR(t.data[1], (1.0 - 0.456) / 0.224, 1e-5);  // 2.4285...
  EXPECT_NEAR(t.data[2], (1.0 - 0.406) / 0.225, 1e-5);  // 2.64
}

// A width x height image whose red value is 10*x + y, green 100 + red, blue 255.
std::vector<unsigned char> coordinate_image(int width, int height) {
  std::vector<unsigned char> rgb;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      rgb.push_back(static_cast<unsigned char>(10 * x + y));
      rgb.push_back(static_cast<unsigned char>(100 + 10 * x + y));
      rgb.push_back(255);
    }
  return rgb;
}

TEST(PreprocessPixels, CentreCropOfAWideImageTakesTheMiddleColumns) {
  // 6x4, shorter side already 4: no resize, and the crop starts at column (6 - 4) / 2 = 1.
  const auto rgb = coordinate_image(6, 4);
  const Tensor t = preprocess_pixels(rgb.data(), 6, 4, raw_spec(4));
  EXPECT_EQ(plane(t, 0), (std::vector<float>{10, 20, 30, 40,  //
                                             11, 21, 31, 41,  //
                                             12, 22, 32, 42,  //
                                             13, 23, 33, 43}));
  EXPECT_EQ(t.data[16], 110);  // green of the crop's top-left pixel, source (1, 0)
  EXPECT_EQ(t.data[32], 255);
}

TEST(PreprocessPixels, CentreCropOfATallImageTakesTheMiddleRows) {
  // 4x7: rows (7 - 4) / 2 = 1 to 4.
  const auto rgb = coordinate_image(4, 7);
  const Tensor t = preprocess_pixels(rgb.data(), 4, 7, raw_spec(4));
  EXPECT_EQ(plane(t, 0), (std::vector<float>{1, 11, 21, 31,  //
                                             2, 12, 22, 32,  //
                                             3, 13, 23, 33,  //
                                             4, 14, 24, 34}));
}

TEST(PreprocessPixels, CropInsideALargerResize) {
  // 4x4 with resize 4 and crop 2: no resize, the centre 2x2 starts at (1, 1).
  const auto rgb = coordinate_image(4, 4);
  InputSpec spec = raw_spec(2);
  spec.resize = 4;
  EXPECT_EQ(plane(preprocess_pixels(rgb.data(), 4, 4, spec), 0),
            (std::vector<float>{11, 21, 12, 22}));
}

// A single-channel picture replicated into R, G and B, so each plane equals it.
std::vector<unsigned char> grey_to_rgb(const std::vector<unsigned char>& grey) {
  std::vector<unsigned char> rgb;
  for (unsigned char v : grey) rgb.insert(rgb.end(), {v, v, v});
  return rgb;
}

TEST(PreprocessPixels, NearestNeighbourUpscaleRepeatsPixels) {
  const auto rgb = grey_to_rgb({0, 160, 80, 240});
  InputSpec spec = raw_spec(4);
  spec.interpolation = "nearest";
  const Tensor t = preprocess_pixels(rgb.data(), 2, 2, spec);
  const std::vector<float> expected{0,  0,  160, 160,  //
                                    0,  0,  160, 160,  //
                                    80, 80, 240, 240,  //
                                    80, 80, 240, 240};
  for (int c = 0; c < 3; ++c) EXPECT_EQ(plane(t, c), expected) << "channel " << c;
}

TEST(PreprocessPixels, BilinearUpscaleUsesPixelCentres) {
  // OpenCV samples the source at (x + 0.5) / 2 - 0.5, i.e. -0.25, 0.25, 0.75, 1.25 (clamped):
  // weights 1, 3/4 + 1/4, 1/4 + 3/4, 1 along each axis.
  const auto rgb = grey_to_rgb({0, 160, 80, 240});
  InputSpec spec = raw_spec(4);
  spec.interpolation = "bilinear";
  EXPECT_EQ(plane(preprocess_pixels(rgb.data(), 2, 2, spec), 1),
            (std::vector<float>{0, 40, 120, 160,    //
                                20, 60, 140, 180,   //
                                60, 100, 180, 220,  //
                                80, 120, 200, 240}));
}

TEST(PreprocessPixels, AreaDownscaleAveragesBlocks) {
  const auto rgb = grey_to_rgb({0, 4, 8, 12, 16, 20, 24, 28, 40, 44, 48, 52, 100, 104, 108, 112});
  InputSpec spec = raw_spec(2);
  spec.interpolation = "area";
  EXPECT_EQ(plane(preprocess_pixels(rgb.data(), 4, 4, spec), 2),
            (std::vector<float>{10, 18, 72, 80}));
}

TEST(PreprocessPixels, ShorterSideResizeKeepsAspectThenCrops) {
  // 8x4 with resize 2: factor 1/2, resized to 4x2 (nearest takes source columns 0, 2, 4, 6 and
  // rows 0, 2), then the centre 2x2 crop keeps resized columns 1 and 2, i.e. source 2 and 4.
  const auto rgb = coordinate_image(8, 4);
  InputSpec spec = raw_spec(2);
  spec.interpolation = "nearest";
  EXPECT_EQ(plane(preprocess_pixels(rgb.data(), 8, 4, spec), 0),
            (std::vector<float>{20, 40, 22, 42}));
}

TEST(PreprocessingDescription, NamesLibraryAndSettings) {
  const std::string text = preprocessing_description(InputSpec{});
  EXPECT_TRUE(Contains(text, "OpenCV"));
  EXPECT_TRUE(Contains(text, "bilinear"));
  EXPECT_TRUE(Contains(text, "256"));
  EXPECT_TRUE(Contains(text, "224"));
}

// ---- files ----------------------------------------------------------------------------------

// Writes `image` (OpenCV's BGR / BGRA / grey order) with cv::imwrite and returns the path.
fs::path write_image(const fs::path& path, const cv::Mat& image) {
  EXPECT_TRUE(cv::imwrite(path.string(), image)) << path;
  return path;
}

// A 4x4 BGR image with distinct values per pixel and channel.
cv::Mat colour_image() {
  cv::Mat image(4, 4, CV_8UC3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) image.at<cv::Vec3b>(y, x) = cv::Vec3b(200, 10 * x + y, 50 + x);
  return image;
}

// Noise compresses badly, so the JPEG is large enough to cut meaningfully.
cv::Mat noise_image(int size) {
  cv::Mat image(size, size, CV_8UC3);
  cv::RNG rng(12345);
  rng.fill(image, cv::RNG::UNIFORM, 0, 256);
  return image;
}

void truncate_to_half(const fs::path& path) {
  const std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() / 2));
}

uint32_t crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// The PNG signature and a well-formed IHDR chunk: all a header-only reader sees.
std::string png_header(uint32_t width, uint32_t height) {
  std::string ihdr = "IHDR" + be32(width) + be32(height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc32(ihdr));
}

std::string error_for(const fs::path& path, const DecodeLimits& limits = {}) {
  return message_of<Error>([&] { preprocess_image(path, raw_spec(4), limits); });
}

TEST(PreprocessImage, PngDecodesToTheSameTensorAsItsPixels) {
  test::TempDir dir;
  const cv::Mat bgr = colour_image();
  const fs::path path = write_image(dir / "colour.png", bgr);
  const PreparedImage prepared = preprocess_image(path, raw_spec(4));
  EXPECT_TRUE(prepared.notes.empty());
  // Channel 0 is red, which OpenCV stores last.
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      EXPECT_EQ(prepared.tensor.data[static_cast<size_t>(y * 4 + x)], 50 + x);
      EXPECT_EQ(prepared.tensor.data[static_cast<size_t>(16 + y * 4 + x)], 10 * x + y);
      EXPECT_EQ(prepared.tensor.data[static_cast<size_t>(32 + y * 4 + x)], 200);
    }
}

TEST(PreprocessImage, JpegDecodes) {
  test::TempDir dir;
  const fs::path path = write_image(dir / "noise.jpg", noise_image(32));
  const PreparedImage prepared = preprocess_image(path, raw_spec(32));
  EXPECT_EQ(prepared.tensor.data.size(), 3u * 32 * 32);
  EXPECT_TRUE(prepared.notes.empty());
}

TEST(PreprocessImage, MissingFile) {
  test::TempDir dir;
  const fs::path path = dir / "absent.jpg";
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "does not exist"));
}

TEST(PreprocessImage, FolderIsNotAnImage) {
  test::TempDir dir;
  fs::create_directories(dir / "folder.png");
  EXPECT_TRUE(Contains(error_for(dir / "folder.png"), "not a regular file"));
}

TEST(PreprocessImage, SymlinkLoopSaysSo) {
  test::TempDir dir;
  fs::create_symlink("b.png", dir / "a.png");
  fs::create_symlink("a.png", dir / "b.png");
  fs::create_symlink("self.png", dir / "self.png");
  for (const char* name : {"a.png", "self.png"}) {
    const std::string message = error_for(dir / name);
    EXPECT_TRUE(Contains(message, (dir / name).string())) << message;
    EXPECT_TRUE(Contains(message, "symlink loop")) << message;
  }
}

TEST(PreprocessImage, FifoAndDeviceAreNotRead) {
  test::TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "pipe.png").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", dir / "zero.png");
  // Opening the FIFO would block for ever and /dev/zero never ends: both are refused unread.
  EXPECT_TRUE(Contains(error_for(dir / "pipe.png"), "not a regular file (a FIFO)"));
  EXPECT_TRUE(Contains(error_for(dir / "zero.png"), "not a regular file (a character device)"));
}

TEST(PreprocessImage, ZeroByteFile) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "empty.png", "");
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "empty"));
}

TEST(PreprocessImage, TextFileNamedJpg) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "notes.jpg", "a shopping list, not a photo\n");
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "not an image"));
}

TEST(PreprocessImage, TruncatedJpeg) {
  test::TempDir dir;
  const fs::path path = write_image(dir / "cut.jpg", noise_image(64));
  truncate_to_half(path);
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "truncated"));
}

TEST(PreprocessImage, TruncatedPng) {
  test::TempDir dir;
  const fs::path path = write_image(dir / "cut.png", noise_image(64));
  truncate_to_half(path);
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "truncated"));
}

TEST(PreprocessImage, PngHeaderOnlyIsTruncated) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "header.png", png_header(4, 4));
  EXPECT_TRUE(Contains(error_for(path), "truncated"));
}

TEST(PreprocessImage, HugePngIsRefusedBeforeDecoding) {
  // 30000 x 30000 = 9e8 pixels, above the default limit of 1e8. Only the header exists, so
  // the refusal must come from reading the header, not from a (truncated) decode.
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "bomb.png", png_header(30000, 30000));
  const std::string message = error_for(path);
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "30000x30000"));
  EXPECT_TRUE(Contains(message, "limit of 100000000 pixels"));
}

std::string le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
          static_cast<char>(v >> 24)};
}

// Found by fuzzing (tests/fuzz/regressions/image): only PNG and JPEG headers were read for the
// size, so a few bytes of another format claiming 30000 x 30000 pixels went to OpenCV, which
// allocated the 2.7 GB image before finding the data missing.
TEST(PreprocessImage, HugeImagesOfEveryFormatAreRefusedBeforeDecoding) {
  const std::map<std::string, std::string> headers = {
      {"bomb.ppm", "P6\n# a comment\n30000 30000\n255\n\x01\x02\x03"},
      {"bomb.bmp", "BM" + le32(54 + 3) + le32(0) + le32(54) + le32(40) + le32(30000) +
                       le32(static_cast<uint32_t>(-30000)) + std::string("\x01\0\x18\0", 4) +
                       std::string(24, '\0') + "\x01\x02\x03"},
      {"bomb.tiff", std::string("II*\0", 4) + le32(8) + std::string("\x02\0", 2) +
                        std::string("\x00\x01\x04\0", 4) + le32(1) + le32(30000) +
                        std::string("\x01\x01\x03\0", 4) + le32(1) + le32(30000) + le32(0)},
      {"bomb.webp", "RIFF" + le32(22) + "WEBPVP8X" + le32(10) + std::string(4, '\0') +
                        le32(29999).substr(0, 3) + le32(29999).substr(0, 3) + "VP8L"},
  };
  for (const auto& [name, bytes] : headers) {
    test::TempDir dir;
    const fs::path path = test::write_file(dir / name, bytes);
    const std::string message = error_for(path);
    EXPECT_TRUE(Contains(message, "30000x30000")) << name;
    EXPECT_TRUE(Contains(message, "limit of 100000000 pixels")) << name;
  }
}

TEST(PreprocessImage, PnmSizeIsReadAsTheDecoderReadsIt) {
  // Found by fuzzing the fixed header reader: OpenCV takes the byte after a number as its end, so
  // to it this header is 433 x 333359 (433 MB), while reading the '#' as a comment gave 433 x 255.
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "p.pgm", "P5\n433#333359\n255\n\x01\x02");
  EXPECT_TRUE(Contains(error_for(path), "433x333359 pixels, above the limit"));
}

// A baseline start-of-frame segment for a 3-component width x height image (19 bytes).
std::string jpeg_sof(uint16_t width, uint16_t height) {
  return std::string("\xFF\xC0\x00\x11\x08", 5) + static_cast<char>(height >> 8) +
         static_cast<char>(height) + static_cast<char>(width >> 8) + static_cast<char>(width) +
         std::string("\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00", 10);
}

TEST(PreprocessImage, JpegSizeIsReadAsLibjpegReadsIt) {
  // A TEM marker has no length, but the header reader took the next two bytes (the FF C0 of the
  // real 30000 x 30000 frame) as one and jumped 65472 bytes ahead, into a comment holding a fake
  // 8 x 8 frame; libjpeg reads the real one, and OpenCV allocated 2.7 GB.
  const std::string sos("\xFF\xDA\x00\x0C\x03\x01\x00\x02\x11\x03\x11\x00\x3F\x00", 14);
  std::string comment(65500, 'x');
  comment.replace(65476 - 27, 33, jpeg_sof(8, 8) + sos);  // where the wrong jump lands
  const std::string bytes = std::string("\xFF\xD8\xFF\x01", 4) + jpeg_sof(30000, 30000) +
                            "\xFF\xFE" + static_cast<char>((65502 >> 8) & 0xFF) +
                            static_cast<char>(65502 & 0xFF) + comment + sos +
                            std::string("\x00\xFF\xD9", 3);
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "desync.jpg", bytes);
  EXPECT_TRUE(Contains(error_for(path), "30000x30000 pixels, above the limit"));
}

TEST(PreprocessImage, TiffSizeIsReadAsLibtiffReadsIt) {
  // libtiff takes the first ImageWidth entry and ignores a duplicate; the header reader took the
  // last, so a small duplicate hid a 30000-pixel width.
  const auto entry = [](uint16_t tag, uint16_t type, uint32_t value) {
    return std::string{static_cast<char>(tag & 0xFF), static_cast<char>(tag >> 8),
                       static_cast<char>(type), '\0'} +
           le32(1) + le32(value);
  };
  const std::string bytes = std::string("II*\0", 4) + le32(8) + std::string("\x03\0", 2) +
                            entry(256, 4, 30000) + entry(256, 4, 8) + entry(257, 3, 30000) +
                            le32(0);
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "dup.tiff", bytes);
  EXPECT_TRUE(Contains(error_for(path), "30000x30000 pixels, above the limit"));
}

TEST(PreprocessImage, FilesOpenCvWouldHandToAnotherDecoderAreRefused) {
  // Found by fuzzing: "P63" is not a PNM to OpenCV (it wants whitespace after the magic), so
  // imdecode offered the file to its next decoders, and the DICOM one (GDCM), seeing "DICM" at
  // byte 128, aborted the whole process on an assertion. Likewise a RIFF/WEBP file whose header
  // libwebp rejects.
  const std::string dicom_tag = "DICM" + std::string("\x02\0\0\0UL\x04\0", 8);
  std::string pnm = "P63 30\n255\n";
  pnm.resize(128, '\0');
  std::string webp = "RIFF" + le32(200) + "WEBPVP8 " + le32(180);
  webp.resize(128, '\0');
  test::TempDir dir;
  EXPECT_TRUE(Contains(error_for(test::write_file(dir / "p.ppm", pnm + dicom_tag)),
                       "not an image in a format deltann reads"));
  EXPECT_TRUE(Contains(error_for(test::write_file(dir / "w.webp", webp + dicom_tag)),
                       "webp header gives no image size"));
}

TEST(PreprocessImage, SizesWhoseProductOverflowsAreRefused) {
  // 4294967295^2 overflowed the 64-bit product (undefined behaviour) to a negative number,
  // which passed the limit.
  test::TempDir dir;
  const fs::path path =
      test::write_file(dir / "huge.png", png_header(0xFFFFFFFFu, 0xFFFFFFFFu) + "IEND");
  EXPECT_TRUE(Contains(error_for(path), "4294967295x4294967295 pixels, above the limit"));
}

TEST(PreprocessImage, EveryFormatOpenCvWritesDecodes) {
  // The header readers must find the size of every format as OpenCV writes it.
  test::TempDir dir;
  for (const char* name : {"c.bmp", "c.tiff", "c.webp", "c.ppm", "c.jpg", "c.png"}) {
    const fs::path path = write_image(dir / name, colour_image());
    EXPECT_EQ(preprocess_image(path, raw_spec(4)).tensor.data.size(), 3u * 4 * 4) << name;
  }
  cv::Mat grey(4, 4, CV_8UC1, cv::Scalar(90));
  const fs::path pgm = write_image(dir / "g.pgm", grey);
  EXPECT_EQ(preprocess_image(pgm, raw_spec(4)).tensor.data.size(), 3u * 4 * 4);
  // A lossless WebP is a VP8L chunk, a lossy one a VP8 chunk.
  cv::imwrite((dir / "lossless.webp").string(), colour_image(), {cv::IMWRITE_WEBP_QUALITY, 101});
  EXPECT_EQ(preprocess_image(dir / "lossless.webp", raw_spec(4)).tensor.data.size(), 48u);
}

TEST(PreprocessImage, HeaderWithoutASizeIsRefused) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "nosize.ppm", "P6 width height 255\n");
  EXPECT_TRUE(Contains(error_for(path), "pnm header gives no image size"));
  // The file ends with the width: the reader must stop at the end (AddressSanitizer saw it read
  // one byte past it).
  EXPECT_TRUE(Contains(error_for(test::write_file(dir / "end.ppm", "P6 3")), "truncated"));
}

TEST(PreprocessImage, LimitsAreConfigurable) {
  test::TempDir dir;
  const fs::path path = write_image(dir / "colour.png", colour_image());
  DecodeLimits pixels;
  pixels.max_pixels = 15;  // the image has 16
  EXPECT_TRUE(Contains(error_for(path, pixels), "limit of 15 pixels"));
  DecodeLimits bytes;
  bytes.max_file_bytes = 10;
  EXPECT_TRUE(Contains(error_for(path, bytes), "10-byte limit"));
}

TEST(PreprocessImage, GrayscalePngIsReplicated) {
  test::TempDir dir;
  cv::Mat grey(4, 4, CV_8UC1);
  for (int i = 0; i < 16; ++i) grey.data[i] = static_cast<unsigned char>(i * 16);
  const PreparedImage prepared = preprocess_image(write_image(dir / "grey.png", grey), raw_spec(4));
  ASSERT_EQ(prepared.notes.size(), 1u);
  EXPECT_TRUE(Contains(prepared.notes[0], "grayscale"));
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 16; ++i)
      EXPECT_EQ(prepared.tensor.data[static_cast<size_t>(c * 16 + i)], i * 16);
}

TEST(PreprocessImage, SixteenBitPngIsReducedToEightBits) {
  test::TempDir dir;
  // 16-bit value v becomes v >> 8: 0x1234 -> 0x12 = 18, 0xFFFF -> 255, 0x8000 -> 128.
  cv::Mat deep(4, 4, CV_16UC3, cv::Scalar(0x8000, 0xFFFF, 0x1234));  // B, G, R
  const PreparedImage prepared = preprocess_image(write_image(dir / "deep.png", deep), raw_spec(4));
  ASSERT_EQ(prepared.notes.size(), 1u);
  EXPECT_TRUE(Contains(prepared.notes[0], "16-bit"));
  EXPECT_EQ(prepared.tensor.data[0], 18);
  EXPECT_EQ(prepared.tensor.data[16], 255);
  EXPECT_EQ(prepared.tensor.data[32], 128);
}

TEST(PreprocessImage, RgbaPngDropsAlpha) {
  test::TempDir dir;
  cv::Mat rgba(4, 4, CV_8UC4, cv::Scalar(30, 20, 10, 0));  // B, G, R, fully transparent
  const PreparedImage prepared =
      preprocess_image(write_image(dir / "alpha.png", rgba), raw_spec(4));
  ASSERT_EQ(prepared.notes.size(), 1u);
  EXPECT_TRUE(Contains(prepared.notes[0], "alpha"));
  // The colour is kept as stored, not blended with any background.
  EXPECT_EQ(prepared.tensor.data[0], 10);
  EXPECT_EQ(prepared.tensor.data[16], 20);
  EXPECT_EQ(prepared.tensor.data[32], 30);
}

TEST(PreprocessImage, GrayscaleJpegIsNoted) {
  test::TempDir dir;
  cv::Mat grey(8, 8, CV_8UC1, cv::Scalar(128));
  const PreparedImage prepared = preprocess_image(write_image(dir / "grey.jpg", grey), raw_spec(8));
  ASSERT_EQ(prepared.notes.size(), 1u);
  EXPECT_TRUE(Contains(prepared.notes[0], "grayscale"));
}

// A complete image followed by extra bytes (padding, or the video that "motion photos" append
// after the JPEG) decodes fine with OpenCV, so the truncation check must not refuse it.
// A GIF of 1x1 pixels with `frames` frames (two-colour global table, one LZW-coded pixel each),
// looping like an animation when it has more than one.
std::string gif(int frames) {
  std::string bytes("GIF89a\x01\x00\x01\x00\x80\x00\x00", 13);
  bytes += std::string("\x00\x00\x00\xff\xff\xff", 6);
  if (frames > 1) bytes += std::string("\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00", 19);
  for (int i = 0; i < frames; ++i) {
    bytes += std::string("\x21\xf9\x04\x00\x0a\x00\x00\x00", 8);  // 0.1 s per frame
    bytes += std::string("\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00", 10);
    bytes += std::string("\x02\x02\x44\x01\x00", 5);
  }
  return bytes + "\x3b";
}

TEST(PreprocessImage, AnimatedGifIsReadFromItsFirstFrameOrRefusedWithTheReason) {
  test::TempDir dir;
  const fs::path animated = test::write_file(dir / "anim.gif", gif(3));
  const fs::path still = test::write_file(dir / "still.gif", gif(1));
  if (!cv::haveImageReader(animated.string())) {
    // This OpenCV cannot read GIF: say so, not "corrupt" or "not an image".
    const std::string message = error_for(animated);
    EXPECT_TRUE(Contains(message, animated.string())) << message;
    EXPECT_TRUE(Contains(message, "animated GIF (3 frames)")) << message;
    EXPECT_TRUE(Contains(message, "GIF is not supported by the decoder")) << message;
    EXPECT_TRUE(Contains(error_for(still), "GIF is not supported by the decoder"));
    EXPECT_FALSE(Contains(error_for(still), "animated"));
  } else {
    const PreparedImage prepared = preprocess_image(animated, raw_spec(1));
    ASSERT_EQ(prepared.notes.size(), 1u);
    EXPECT_TRUE(Contains(prepared.notes[0], "first of its 3 frames"));
  }
}

TEST(ImageFormat, SignaturesAreRecognised) {
  const auto format = [](const std::string& head) {
    return image_format_of(reinterpret_cast<const unsigned char*>(head.data()), head.size());
  };
  EXPECT_EQ(format(std::string("\xff\xd8\xff\xe0", 4)), "jpeg");
  EXPECT_EQ(format(png_header(1, 1)), "png");
  EXPECT_EQ(format(gif(2)), "gif");
  EXPECT_EQ(format("GIF87a"), "gif");
  EXPECT_EQ(format(std::string("II*\0", 4)), "tiff");
  EXPECT_EQ(format(std::string("RIFF\x10\x00\x00\x00WEBPVP8 ", 16)), "webp");
  EXPECT_EQ(format("P6\n1 1\n255\n"), "pnm");
  EXPECT_EQ(format("a.jpg 3\n"), "");
  EXPECT_EQ(format(""), "");
}

TEST(PreprocessImage, CompleteImageWithTrailingBytesIsAccepted) {
  test::TempDir dir;
  const fs::path jpeg = write_image(dir / "trailer.jpg", colour_image());
  test::write_file(jpeg, test::read_file(jpeg) + std::string(100, '\0'));
  EXPECT_NO_THROW(preprocess_image(jpeg, raw_spec(4)));
  const fs::path png = write_image(dir / "trailer.png", colour_image());
  test::write_file(png, test::read_file(png) + "\n");
  EXPECT_NO_THROW(preprocess_image(png, raw_spec(4)));
}

// ---- cache ----------------------------------------------------------------------------------

TEST(PreprocessCache, SecondPrepareComesFromTheCache) {
  test::TempDir dir;
  cv::Mat grey(4, 4, CV_8UC1, cv::Scalar(77));
  const fs::path image = write_image(dir / "grey.png", grey);
  PreprocessCache cache(dir / "cache");
  EXPECT_EQ(cache.dir(), dir / "cache");

  const auto first = cache.prepare(image, raw_spec(4));
  EXPECT_FALSE(first.from_cache);
  EXPECT_EQ(first.image_sha256.size(), 64u);
  ASSERT_TRUE(fs::exists(first.tensor_path));
  EXPECT_EQ(first.tensor_path.string().rfind((dir / "cache").string() + "/", 0), 0u);
  const std::string bytes = test::read_file(first.tensor_path);
  const Tensor tensor = read_npy(first.tensor_path);
  EXPECT_EQ(tensor.data, preprocess_image(image, raw_spec(4)).tensor.data);
  ASSERT_EQ(first.notes.size(), 1u);

  const auto second = cache.prepare(image, raw_spec(4));
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.tensor_path, first.tensor_path);
  EXPECT_EQ(second.image_sha256, first.image_sha256);
  EXPECT_EQ(second.notes, first.notes);
  EXPECT_EQ(test::read_file(second.tensor_path), bytes);

  // A new cache object on the same folder finds the same entry.
  const auto third = PreprocessCache(dir / "cache").prepare(image, raw_spec(4));
  EXPECT_TRUE(third.from_cache);
  EXPECT_EQ(third.notes, first.notes);
}

// A run killed while writing a tensor leaves `<hash>.tmp<pid>`; the next run that writes into that
// folder removes it, but not the temporary file of a run that is still alive.
TEST(PreprocessCache, TemporaryFilesOfKilledRunsAreRemoved) {
  test::TempDir dir;
  const fs::path first = write_image(dir / "a.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(1)));
  const fs::path second = write_image(dir / "b.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(2)));
  const fs::path folder =
      PreprocessCache(dir / "cache").prepare(first, raw_spec(4)).tensor_path.parent_path();
  // No process has pid 2^22 + 1 (above Linux's pid_max of 2^22); this one is alive.
  const fs::path dead = test::write_file(folder / "abc.tmp4194305", "half a tensor");
  const fs::path alive =
      test::write_file(folder / ("def.tmp" + std::to_string(::getpid())), "being written");
  PreprocessCache(dir / "cache").prepare(second, raw_spec(4));
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
}

TEST(PreprocessCache, DifferentSpecGivesADifferentTensor) {
  test::TempDir dir;
  const fs::path image = write_image(dir / "colour.png", colour_image());
  PreprocessCache cache(dir / "cache");
  const auto rgb = cache.prepare(image, raw_spec(4));
  InputSpec bgr_spec = raw_spec(4);
  bgr_spec.channel_order = ChannelOrder::BGR;
  const auto bgr = cache.prepare(image, bgr_spec);
  EXPECT_FALSE(bgr.from_cache);
  EXPECT_NE(bgr.tensor_path, rgb.tensor_path);
  EXPECT_EQ(bgr.image_sha256, rgb.image_sha256);
  EXPECT_NE(read_npy(bgr.tensor_path).data, read_npy(rgb.tensor_path).data);
}

TEST(PreprocessCache, SameContentUnderTwoNamesSharesTheTensor) {
  test::TempDir dir;
  const fs::path a = write_image(dir / "a.png", colour_image());
  const fs::path b = dir / "copy" / "b.png";
  fs::create_directories(b.parent_path());
  fs::copy_file(a, b);
  PreprocessCache cache(dir / "cache");
  const auto first = cache.prepare(a, raw_spec(4));
  const auto second = cache.prepare(b, raw_spec(4));
  EXPECT_FALSE(first.from_cache);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.tensor_path, first.tensor_path);
  EXPECT_EQ(second.image_sha256, first.image_sha256);
}

TEST(PreprocessCache, BadImageIsAnErrorAndLeavesNoTensor) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "bad.png", "not a png");
  PreprocessCache cache(dir / "cache");
  const std::string message = message_of<Error>([&] { cache.prepare(path, raw_spec(4)); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "not an image"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { cache.prepare(dir / "gone.png", raw_spec(4)); }),
                       "gone.png"));
  // A symlink loop is an Error naming it too, not a filesystem exception.
  fs::create_symlink("loop.png", dir / "loop.png");
  EXPECT_TRUE(Contains(message_of<Error>([&] { cache.prepare(dir / "loop.png", raw_spec(4)); }),
                       "loop.png: symlink loop"));
  // Nothing half-made is left for a later run to pick up.
  bool any_tensor = false;
  if (fs::exists(dir / "cache"))
    for (const auto& entry : fs::recursive_directory_iterator(dir / "cache"))
      any_tensor = any_tensor || entry.path().extension() == ".npy";
  EXPECT_FALSE(any_tensor);
}

}  // namespace
}  // namespace deltann
