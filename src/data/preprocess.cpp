#include "deltann/preprocess.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <webp/decode.h>
#include <opencv2/core.hpp>
#include <opencv2/core/version.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "deltann/dataset.h"
#include "deltann/error.h"
#include "deltann/hash.h"

namespace deltann {
namespace fs = std::filesystem;
namespace {

// What the file's header says, read before decoding so that a bomb is refused without
// allocating it and so that conversions OpenCV applies silently can be reported.
struct HeaderInfo {
  std::string format;             // jpeg, png, bmp, tiff, webp, pnm, or "" when unknown
  int64_t width = 0, height = 0;  // 0 when the format's header was not parsed
  std::vector<std::string> notes;
  bool truncated = false;
  int frames = 0;  // GIF only
};

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t le32(const unsigned char* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}
uint32_t le16(const unsigned char* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t be16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | p[1]; }

void parse_png(const std::vector<unsigned char>& b, HeaderInfo& h) {
  if (b.size() < 33 || std::string(b.begin() + 12, b.begin() + 16) != "IHDR") {
    h.truncated = true;
    return;
  }
  h.width = be32(&b[16]);
  h.height = be32(&b[20]);
  const int depth = b[24], color = b[25];
  if (depth == 16) h.notes.push_back("16-bit PNG reduced to 8 bits per channel");
  if (color == 0 || color == 4) h.notes.push_back("grayscale image replicated to 3 channels");
  if (color == 4 || color == 6) h.notes.push_back("alpha channel dropped");
  if (color == 3) h.notes.push_back("palette image expanded to RGB");
  // Walk the chunks (length, type, data, CRC) to IEND; a file that ends first is truncated.
  // Bytes after IEND are ignored, as decoders do.
  h.truncated = true;
  for (size_t at = 8; at + 12 <= b.size();) {
    const size_t length = be32(&b[at]);
    if (std::string(b.begin() + static_cast<std::ptrdiff_t>(at + 4),
                    b.begin() + static_cast<std::ptrdiff_t>(at + 8)) == "IEND") {
      h.truncated = false;
      break;
    }
    if (length > b.size()) break;
    at += 12 + length;
  }
}

void parse_jpeg(const std::vector<unsigned char>& b, HeaderInfo& h) {
  // Walk the marker segments: the start-of-frame holds the dimensions, the start-of-scan begins
  // the entropy-coded data. Segments are skipped by their length, so an EXIF thumbnail (a whole
  // JPEG inside APP1) is never mistaken for the image. The walk follows libjpeg's reader
  // (jdmarker.c next_marker), so that both find the same start-of-frame: stray bytes and FF 00
  // before a marker are skipped, and the markers without a length (TEM, RSTn, SOI, EOI) are only
  // two bytes; reading a length after them would jump to wherever the next two bytes point.
  size_t i = 2, scan = 0;
  bool have_size = false;
  while (i + 1 < b.size()) {
    const unsigned char marker = b[i + 1];
    if (b[i] != 0xFF || marker == 0xFF) {  // a stray byte, or a fill byte before the marker
      ++i;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
      i += 2;
      continue;
    }
    if (i + 4 > b.size()) break;
    const size_t length = (size_t{b[i + 2]} << 8) | b[i + 3];
    const bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && !have_size && i + 9 < b.size()) {
      h.height = (int64_t{b[i + 5]} << 8) | b[i + 6];
      h.width = (int64_t{b[i + 7]} << 8) | b[i + 8];
      have_size = true;
      if (b[i + 9] == 1) h.notes.push_back("grayscale image replicated to 3 channels");
    }
    if (marker == 0xDA) {
      scan = i + 2 + length;
      break;
    }
    i += 2 + length;
  }
  // Entropy-coded data never contains FF D9 (an FF there is always stuffed), so a complete file
  // has its end-of-image marker after the first scan; bytes after it (e.g. a motion photo's video)
  // are ignored. OpenCV would otherwise decode a truncated file into a partly grey image with only
  // a warning.
  bool has_eoi = false;
  for (size_t k = scan; scan > 0 && k + 1 < b.size() && !has_eoi; ++k)
    has_eoi = b[k] == 0xFF && b[k + 1] == 0xD9;
  h.truncated = !has_eoi;
}

// Walks a GIF's blocks to count its frames: an animation has several, and a decoder that reads
// GIF takes the first.
void parse_gif(const std::vector<unsigned char>& b, HeaderInfo& h) {
  if (b.size() < 13) {
    h.truncated = true;
    return;
  }
  h.width = b[6] | (b[7] << 8);
  h.height = b[8] | (b[9] << 8);
  const auto colour_table = [](unsigned char flags) {
    return flags & 0x80 ? size_t{3} << ((flags & 7) + 1) : size_t{0};
  };
  size_t at = 13 + colour_table(b[10]);
  const auto skip_sub_blocks = [&] {
    while (at < b.size() && b[at] != 0) at += 1 + size_t{b[at]};
    ++at;
  };
  h.truncated = true;
  while (at < b.size()) {
    if (b[at] == 0x3B) {  // trailer
      h.truncated = false;
      break;
    }
    if (b[at] == 0x21) {  // extension: introducer, label, sub-blocks
      at += 2;
      skip_sub_blocks();
    } else if (b[at] == 0x2C && at + 10 < b.size()) {  // image: descriptor, table, LZW data
      ++h.frames;
      at += 10 + colour_table(b[at + 9]) + 1;
      skip_sub_blocks();
    } else {
      break;
    }
  }
  if (h.frames > 1)
    h.notes.push_back("animated GIF: the first of its " + std::to_string(h.frames) +
                      " frames is used");
}

// The formats below carry their size in the header too; without reading it, a 20-byte PNM or BMP
// claiming 30000 x 30000 pixels would have OpenCV allocate gigabytes before finding the data
// missing. A header too short to hold the size leaves it 0 and marks the file truncated.

void parse_bmp(const std::vector<unsigned char>& b, HeaderInfo& h) {
  if (b.size() < 26) {
    h.truncated = true;
    return;
  }
  if (le32(&b[14]) == 12) {  // BITMAPCOREHEADER: 16-bit sizes
    h.width = le16(&b[18]);
    h.height = le16(&b[20]);
  } else {  // BITMAPINFOHEADER and later: signed 32-bit sizes, a negative height is top-down
    h.width = std::abs(int64_t{static_cast<int32_t>(le32(&b[18]))});
    h.height = std::abs(int64_t{static_cast<int32_t>(le32(&b[22]))});
  }
}

void parse_pnm(const std::vector<unsigned char>& b, HeaderInfo& h) {
  // "P6", then width and height as decimal text, separated by whitespace and '#' comments, read
  // as OpenCV's decoder reads them: the byte that ends a number goes with it, whatever it is, so
  // "433#333359" is 433 then 333359, not 433 then a comment.
  size_t i = 2;
  int64_t* sizes[] = {&h.width, &h.height};
  for (int64_t* size : sizes) {
    while (i < b.size() && (std::isspace(b[i]) || b[i] == '#'))
      if (b[i++] == '#')
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
    if (i >= b.size() || !std::isdigit(b[i])) {
      h.truncated = i >= b.size();
      return;
    }
    // Saturate: a number too long for int64 is as far above the limit as one that fits.
    for (; i < b.size() && std::isdigit(b[i]); ++i)
      *size = std::min<int64_t>(*size * 10 + (b[i] - '0'), int64_t{1} << 40);
    ++i;
  }
}

void parse_tiff(const std::vector<unsigned char>& b, HeaderInfo& h) {
  // The first image file directory (IFD): 12-byte entries of tag, type, count and value; the
  // ImageWidth (256) and ImageLength (257) tags hold the size. As in libtiff, the first entry of
  // a tag counts and later duplicates are ignored; a type other than an inline (S)BYTE, (S)SHORT
  // or (S)LONG leaves the size unknown.
  const bool little = b[0] == 'I';
  const auto u16 = [&](size_t at) { return little ? le16(&b[at]) : be16(&b[at]); };
  const auto u32 = [&](size_t at) { return little ? le32(&b[at]) : be32(&b[at]); };
  if (b.size() < 8 || u32(4) > b.size() - 2) {
    h.truncated = true;
    return;
  }
  const size_t ifd = u32(4);
  const size_t entries = u16(ifd);
  bool seen[2] = {false, false};
  for (size_t k = 0; k < entries; ++k) {
    const size_t at = ifd + 2 + 12 * k;
    if (at + 12 > b.size()) {
      h.truncated = true;
      return;
    }
    const uint32_t tag = u16(at), type = u16(at + 2);
    if ((tag != 256 && tag != 257) || seen[tag - 256]) continue;
    seen[tag - 256] = true;
    int64_t& size = tag == 256 ? h.width : h.height;
    if (type == 1 || type == 6)
      size = b[at + 8];
    else if (type == 3 || type == 8)
      size = u16(at + 8);
    else if (type == 4 || type == 9)
      size = u32(at + 8);
  }
}

void parse_webp(const std::vector<unsigned char>& b, HeaderInfo& h) {
  // OpenCV's decoder claims a WebP file only when libwebp reads the features of its first 32
  // bytes, and takes the size from them: the same call gives the same answer here.
  constexpr size_t kHeaderBytes = 32;
  if (b.size() < kHeaderBytes) {
    h.truncated = true;
    return;
  }
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(b.data(), kHeaderBytes, &features) != VP8_STATUS_OK) return;  // no size
  h.width = features.width;
  h.height = features.height;
}

HeaderInfo inspect(const std::vector<unsigned char>& b) {
  HeaderInfo h;
  h.format = image_format_of(b.data(), b.size());
  if (h.format == "jpeg") parse_jpeg(b, h);
  if (h.format == "png") parse_png(b, h);
  if (h.format == "gif") parse_gif(b, h);
  if (h.format == "bmp") parse_bmp(b, h);
  if (h.format == "tiff") parse_tiff(b, h);
  if (h.format == "webp") parse_webp(b, h);
  if (h.format == "pnm") parse_pnm(b, h);
  return h;
}

int interpolation_flag(const std::string& name) {
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "area") return cv::INTER_AREA;
  if (name == "bicubic") return cv::INTER_CUBIC;
  return cv::INTER_LINEAR;
}

// A GIF that this build's decoder cannot read is refused with what it is, rather than reported
// as corrupt (OpenCV's imgcodecs has no GIF reader before 4.11).
void check_gif_support(const fs::path& path, const HeaderInfo& header) {
  if (cv::haveImageReader(path.string())) return;
  const std::string what =
      header.frames > 1 ? "animated GIF (" + std::to_string(header.frames) + " frames)" : "GIF";
  throw Error(path.string() + ": " + what + ": GIF is not supported by the decoder (OpenCV " +
              CV_VERSION +
              " imgcodecs has no GIF reader); convert it, e.g. its first frame to PNG");
}

std::vector<unsigned char> read_bytes(const fs::path& path, const DecodeLimits& limits) {
  if (const std::string problem = file_problem(path); !problem.empty())
    throw Error(path.string() + ": " + problem);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(path.string() + ": cannot read (" + ec.message() + ")");
  if (size == 0) throw Error(path.string() + ": file is empty (0 bytes)");
  if (static_cast<int64_t>(size) > limits.max_file_bytes)
    throw Error(path.string() + ": file is " + std::to_string(size) + " bytes, above the " +
                std::to_string(limits.max_file_bytes) + "-byte limit for an image");
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in) throw Error(path.string() + ": cannot read");
  return bytes;
}

}  // namespace

// Names the format by its magic number exactly as OpenCV's decoder for it recognises the file
// (its checkSignature). A file that decoder declines falls through to OpenCV's other decoders
// (DICOM through GDCM, GDAL, JPEG 2000, OpenEXR), whose sizes are not read here and of which
// GDCM aborts the process on some malformed files: such a file must be refused, not passed on.
std::string image_format_of(const unsigned char* bytes, size_t size) {
  const auto starts = [&](std::initializer_list<unsigned char> magic) {
    return size >= magic.size() && std::equal(magic.begin(), magic.end(), bytes);
  };
  if (starts({0xFF, 0xD8, 0xFF})) return "jpeg";
  if (starts({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A})) return "png";
  if (starts({'G', 'I', 'F', '8', '7', 'a'}) || starts({'G', 'I', 'F', '8', '9', 'a'}))
    return "gif";
  if (starts({'B', 'M'})) return "bmp";
  if (starts({'I', 'I', 0x2A, 0x00}) || starts({'M', 'M', 0x00, 0x2A})) return "tiff";
  if (size >= 12 && starts({'R', 'I', 'F', 'F'}) && std::equal(bytes + 8, bytes + 12, "WEBP"))
    return "webp";
  if (size >= 3 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6' && std::isspace(bytes[2]))
    return "pnm";
  return "";
}

Tensor preprocess_pixels(const unsigned char* rgb, int width, int height, const InputSpec& spec) {
  const cv::Mat image(height, width, CV_8UC3, const_cast<unsigned char*>(rgb));
  // Shorter side to `resize`, keeping the aspect ratio, then the centre `crop` x `crop`.
  const double factor = static_cast<double>(spec.resize) / std::min(width, height);
  const int new_w = std::max(spec.crop, static_cast<int>(std::lround(width * factor)));
  const int new_h = std::max(spec.crop, static_cast<int>(std::lround(height * factor)));
  cv::Mat resized;
  if (new_w == width && new_h == height)
    resized = image;
  else
    cv::resize(image, resized, cv::Size(new_w, new_h), 0, 0,
               interpolation_flag(spec.interpolation));
  const int left = (new_w - spec.crop) / 2, top = (new_h - spec.crop) / 2;
  const cv::Mat crop = resized(cv::Rect(left, top, spec.crop, spec.crop));

  Tensor t;
  t.shape = spec.shape;
  const int size = spec.crop;
  t.data.resize(static_cast<size_t>(3) * size * size);
  // Channel c of the output takes source channel c (RGB) or 2 - c (BGR). Everything that depends
  // only on the channel is chosen once, outside the pixel loops; the arithmetic per value stays
  // (v * scale - mean) / std so results do not change by a bit.
  const size_t plane = static_cast<size_t>(size) * size;
  for (int c = 0; c < 3; ++c) {
    const int source = spec.channel_order == ChannelOrder::RGB ? c : 2 - c;
    const float scale = spec.scale, mean = spec.mean[c], std = spec.std[c];
    const bool planar = spec.layout == Layout::NCHW;
    float* out = t.data.data() + (planar ? c * plane : static_cast<size_t>(c));
    const size_t step = planar ? 1 : 3;
    for (int y = 0; y < size; ++y) {
      const unsigned char* row = crop.ptr<unsigned char>(y) + source;
      for (int x = 0; x < size; ++x, out += step)
        *out = (static_cast<float>(row[x * 3]) * scale - mean) / std;
    }
  }
  return t;
}

PreparedImage preprocess_image(const fs::path& path, const InputSpec& spec,
                               const DecodeLimits& limits) {
  // A raw-tensor input (a subgraph cut out by `localize --reproduce`) has no image geometry.
  if (spec.raw_tensor)
    throw Error(path.string() +
                ": the model takes a raw tensor (spec input kind 'tensor'), not an "
                "image; give a float32 .npy tensor instead");
  const auto bytes = read_bytes(path, limits);
  HeaderInfo header = inspect(bytes);
  if (header.format.empty())
    throw Error(path.string() +
                ": not an image in a format deltann reads (JPEG, PNG, BMP, TIFF, WebP, PNM)");
  if (header.format == "gif") check_gif_support(path, header);
  // Divided rather than multiplied: two 32-bit sizes can overflow the product.
  if (header.height > 0 && header.width > limits.max_pixels / header.height)
    throw Error(path.string() + ": image is " + std::to_string(header.width) + "x" +
                std::to_string(header.height) + " pixels, above the limit of " +
                std::to_string(limits.max_pixels) + " pixels");
  if (header.truncated) throw Error(path.string() + ": " + header.format + " file is truncated");
  // Without the size the limit cannot be applied, so the decoder is not asked either.
  if (header.width <= 0 || header.height <= 0)
    throw Error(path.string() + ": " + header.format + " header gives no image size");
  cv::Mat decoded;
  try {
    decoded = cv::imdecode(bytes, cv::IMREAD_COLOR);  // 8-bit BGR, EXIF orientation applied
  } catch (const cv::Exception& e) {
    throw Error(path.string() + ": cannot decode " + header.format + " (" + e.msg + ")");
  }
  if (decoded.empty())
    throw Error(path.string() + ": " + header.format + " data is corrupt and cannot be decoded");
  cv::Mat rgb;
  cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  return {preprocess_pixels(rgb.data, rgb.cols, rgb.rows, spec), header.notes};
}

std::string preprocessing_description(const InputSpec& spec) {
  return std::string("OpenCV ") + CV_VERSION + " imdecode+resize (" + spec.interpolation +
         "), shorter side " + std::to_string(spec.resize) + ", centre crop " +
         std::to_string(spec.crop);
}

namespace {

// Removes `<hash>.tmp<pid>` files of processes that are gone (a run killed while writing).
void remove_dead_runs_temporaries(const fs::path& folder) {
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto at = name.rfind(".tmp");
    if (at == std::string::npos || at + 4 == name.size() ||
        name.find_first_not_of("0123456789", at + 4) != std::string::npos)
      continue;
    const long pid = std::strtol(name.c_str() + at + 4, nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

}  // namespace

PreprocessCache::PreprocessCache(fs::path dir) : dir_(std::move(dir)) {}

PreprocessCache::Entry PreprocessCache::prepare(const fs::path& image, const InputSpec& spec,
                                                const DecodeLimits& limits) {
  // Key on the image's content and on everything that shapes the tensor, including the library.
  if (const std::string problem = file_problem(image); !problem.empty())
    throw Error(image.string() + ": " + problem);
  const std::string image_hash = sha256_file(image);
  const std::string spec_hash =
      sha256_text(spec.preprocessing_key() + "|" + preprocessing_description(spec)).substr(0, 16);
  const fs::path folder = dir_ / "tensors" / spec_hash;
  Entry entry;
  entry.image_sha256 = image_hash;
  entry.tensor_path = folder / (image_hash + ".npy");
  const fs::path notes_path = folder / (image_hash + ".notes");
  if (fs::exists(entry.tensor_path)) {
    entry.from_cache = true;
    std::ifstream in(notes_path);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) entry.notes.push_back(line);
    return entry;
  }
  PreparedImage prepared = preprocess_image(image, spec, limits);
  entry.notes = prepared.notes;
  fs::create_directories(folder);
  // Write under a unique name and rename, so a killed run never leaves a half-written tensor
  // under the final name; what a killed run left under its temporary name goes on the next visit.
  if (swept_.insert(folder).second) remove_dead_runs_temporaries(folder);
  const fs::path tmp = folder / (image_hash + ".tmp" + std::to_string(::getpid()));
  write_npy(tmp, prepared.tensor);
  {
    std::ofstream notes(notes_path);
    for (const auto& n : entry.notes) notes << n << '\n';
  }
  fs::rename(tmp, entry.tensor_path);
  return entry;
}

fs::path default_cache_dir() {
  if (const char* d = std::getenv("DELTANN_CACHE"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "deltann";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "deltann";
  return fs::temp_directory_path() / "deltann-cache";
}

}  // namespace deltann
