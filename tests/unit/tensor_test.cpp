// Tensors and the .npy file format (tensor.h).
#include "deltann/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Bit-for-bit equality, so that NaN == NaN and -0.0 != 0.0.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Length of the header (magic + version + length field + dictionary) of a .npy file's bytes.
size_t header_end(const std::string& bytes) {
  const size_t dict_len = static_cast<unsigned char>(bytes[8]) |
                          (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  return 10 + dict_len;
}

TEST(Tensor, ElementCountAndShapeString) {
  EXPECT_EQ((Tensor{{1, 3, 224, 224}, {}}).element_count(), 150528);
  EXPECT_EQ((Tensor{{1, 3, 224, 224}, {}}).shape_string(), "[1,3,224,224]");
  EXPECT_EQ((Tensor{{}, {}}).element_count(), 1);  // a scalar
  EXPECT_EQ((Tensor{{}, {}}).shape_string(), "[]");
  EXPECT_EQ((Tensor{{4, 0}, {}}).element_count(), 0);
}

TEST(Npy, RoundTripFourDimensional) {
  test::TempDir dir;
  Tensor t;
  t.shape = {1, 2, 3, 4};
  for (int i = 0; i < 24; ++i) t.data.push_back(static_cast<float>(i) * 0.5f - 3.0f);
  write_npy(dir / "t.npy", t);
  const Tensor back = read_npy(dir / "t.npy");
  EXPECT_EQ(back.shape, t.shape);
  EXPECT_EQ(back.data, t.data);
}

TEST(Npy, RoundTripOneDimensionalWithSpecialValues) {
  test::TempDir dir;
  const Tensor t{{7},
                 {kNaN, kInf, -kInf, -0.0f, std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::max(), 1.0f}};
  write_npy(dir / "t.npy", t);
  const Tensor back = read_npy(dir / "t.npy");
  EXPECT_EQ(back.shape, (std::vector<int64_t>{7}));
  EXPECT_TRUE(same_bits(back.data, t.data));
  EXPECT_TRUE(std::isnan(back.data[0]));
  EXPECT_TRUE(std::signbit(back.data[3]));
}

TEST(Npy, RoundTripScalarAndEmpty) {
  test::TempDir dir;
  write_npy(dir / "scalar.npy", Tensor{{}, {42.0f}});
  const Tensor scalar = read_npy(dir / "scalar.npy");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.data, (std::vector<float>{42.0f}));

  write_npy(dir / "empty.npy", Tensor{{0, 3}, {}});
  const Tensor empty = read_npy(dir / "empty.npy");
  EXPECT_EQ(empty.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(empty.data.empty());
}

TEST(Npy, HeaderIsVersion1PaddedToAMultipleOf64) {
  test::TempDir dir;
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {}, {5}, {1, 3, 224, 224}, {1, 1000}, {123456789, 0, 1, 2, 3, 4, 5, 6, 7, 8}}) {
    Tensor t{shape, {}};
    t.data.resize(static_cast<size_t>(t.element_count()));
    write_npy(dir / "t.npy", t);
    const std::string bytes = test::read_file(dir / "t.npy");
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t end = header_end(bytes);
    EXPECT_EQ(end % 64, 0u) << t.shape_string();
    EXPECT_EQ(bytes[end - 1], '\n') << t.shape_string();
    EXPECT_EQ(bytes.size(), end + t.data.size() * sizeof(float)) << t.shape_string();
  }
}

TEST(Npy, HeaderTextIsWhatNumpyWrites) {
  test::TempDir dir;
  write_npy(dir / "a.npy", Tensor{{5}, {1, 2, 3, 4, 5}});
  std::string bytes = test::read_file(dir / "a.npy");
  std::string header = bytes.substr(10, header_end(bytes) - 10);
  EXPECT_EQ(header.substr(0, header.find_last_not_of(" \n") + 1),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }");
  EXPECT_EQ(header.size(), 118u);  // 10 + 118 = 128 bytes

  write_npy(dir / "b.npy", Tensor{{2, 3}, std::vector<float>(6, 0.0f)});
  bytes = test::read_file(dir / "b.npy");
  header = bytes.substr(10, header_end(bytes) - 10);
  EXPECT_TRUE(Contains(header, "'shape': (2, 3), }"));
  // Little-endian float32 data follows: 1.0f is 00 00 80 3f.
  write_npy(dir / "c.npy", Tensor{{1}, {1.0f}});
  bytes = test::read_file(dir / "c.npy");
  EXPECT_EQ(bytes.substr(header_end(bytes)), std::string("\x00\x00\x80\x3f", 4));
}

TEST(Npy, NotAnNpyFileIsAnErrorNamingTheFile) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "notes.npy", "this is a text file, not a tensor\n");
  const std::string message = message_of<Error>([&] { read_npy(path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "not a NumPy .npy"));
}

TEST(Npy, TruncatedDataIsAnErrorNamingTheFile) {
  test::TempDir dir;
  const fs::path path = dir / "t.npy";
  write_npy(path, Tensor{{100}, std::vector<float>(100, 1.5f)});
  const std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() - 200));
  const std::string message = message_of<Error>([&] { read_npy(path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "truncated"));
}

TEST(Npy, TruncatedHeaderIsAnErrorNamingTheFile) {
  test::TempDir dir;
  const fs::path path = dir / "t.npy";
  write_npy(path, Tensor{{4}, {1, 2, 3, 4}});
  for (const size_t keep : {4u, 30u}) {
    test::write_file(path, test::read_file(path).substr(0, keep));
    EXPECT_TRUE(Contains(message_of<Error>([&] { read_npy(path); }), path.string())) << keep;
    write_npy(path, Tensor{{4}, {1, 2, 3, 4}});
  }
}

// Found by fuzzing (tests/fuzz/regressions/npy): a header length beyond the end of the file, with
// a complete-looking header inside it, made the data size wrap around, so a shape of 10^12
// values passed the size check and was allocated.
TEST(Npy, HeaderLongerThanTheFileIsTruncatedNotAllocated) {
  test::TempDir dir;
  const std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }";
  const size_t claimed = header.size() + 100;
  const std::string bytes = std::string("\x93NUMPY\x01\x00", 8) +
                            static_cast<char>(claimed & 0xff) + static_cast<char>(claimed >> 8) +
                            header;
  const fs::path path = test::write_file(dir / "t.npy", bytes);
  const std::string message = message_of<Error>([&] { read_npy(path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "header is truncated"));
}

TEST(Npy, OtherDtypeIsAnError) {
  test::TempDir dir;
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');  // 10 + 117 + 1 = 128
  header += '\n';
  const std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) +
                            '\0' + header + std::string(8, '\0');
  const fs::path path = test::write_file(dir / "double.npy", bytes);
  const std::string message = message_of<Error>([&] { read_npy(path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "float32"));
}

TEST(Npy, MissingFileIsAnError) {
  test::TempDir dir;
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_npy(dir / "absent.npy"); }), "absent.npy"));
}

TEST(Npy, UnwritablePathIsAnError) {
  test::TempDir dir;
  const fs::path path = dir / "no-such-folder" / "t.npy";
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         write_npy(path, Tensor{{1}, {1.0f}});
                       }),
                       path.string()));
}

}  // namespace
}  // namespace deltann

// float64 .npy files (captured layer values) share the format code with float32 ones.
namespace deltann {
namespace {

TEST(NpyF64, RoundTripKeepsEveryBit) {
  test::TempDir dir;
  const std::vector<double> values{
      1.0 / 3, -0.0, 1e-310, std::numeric_limits<double>::infinity(), std::nan(""), 6};
  write_npy_f64(dir / "d.npy", {2, 3}, values);
  std::vector<int64_t> shape;
  const std::vector<double> back = read_npy_f64(dir / "d.npy", shape);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(back.size(), values.size());
  EXPECT_EQ(std::memcmp(back.data(), values.data(), values.size() * sizeof(double)), 0);
  const std::string bytes = test::read_file(dir / "d.npy");
  EXPECT_TRUE(Contains(bytes.substr(0, 128),
                       "{'descr': '<f8', 'fortran_order': False, "
                       "'shape': (2, 3), }"));
  EXPECT_EQ(bytes.size(), 128 + 6 * sizeof(double));
}

TEST(NpyF64, TypesAreNotMixedUp) {
  test::TempDir dir;
  write_npy_f64(dir / "d.npy", {1}, {1.0});
  write_npy(dir / "f.npy", Tensor{{1}, {1.0f}});
  std::vector<int64_t> shape;
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_npy(dir / "d.npy"); }), "float32"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_npy_f64(dir / "f.npy", shape); }), "float64"));
}

TEST(NpyF64, ShapeMustHoldTheValues) {
  test::TempDir dir;
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         write_npy_f64(dir / "d.npy", {2, 2}, {1, 2});
                       }),
                       "d.npy"));
  EXPECT_THROW(write_npy_f64(dir / "n.npy", {-1}, {}), Error);
  EXPECT_THROW(write_npy(dir / "f.npy", Tensor{{3}, {1.0f}}), Error);
}

}  // namespace
}  // namespace deltann
