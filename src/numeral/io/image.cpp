#include "numeral/io/image.h"

#include <gif_lib.h>
#include <stb_easy_font.h>
#include <stb_image.h>
#include <stb_image_write.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"

namespace numeral {
namespace {

// stb_easy_font geometry, in font units: line advance and the ink below the top of a line.
constexpr int kFontLineAdvance = 12;
constexpr int kFontInkHeight = 9;  // descenders (g, j, p, q, y) reach row 8
constexpr int kFontCapHeight = 7;  // digits and capitals occupy rows 0..6
constexpr int kFontMaxQuadsPerChar = 16;

std::string shape_string(const torch::Tensor& x) {
  std::ostringstream out;
  out << x.sizes();
  return out.str();
}

void check_image(const Image& image, const char* function) {
  NUMERAL_CHECK(image.channels == 1 || image.channels == 3,
                "{}: expected an image with 1 or 3 channels, got {}", function, image.channels);
  NUMERAL_CHECK(
      image.width >= 0 && image.height >= 0 &&
          image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels,
      "{}: image of {}x{}x{} holds {} bytes", function, image.width, image.height, image.channels,
      image.pixels.size());
}

// uint8 or floating [..., C, H, W] in [-1, 1] -> uint8 [..., C, H, W] on the CPU.
torch::Tensor to_uint8(const torch::Tensor& x, const char* function) {
  torch::Tensor cpu = x.cpu();
  if (cpu.scalar_type() == torch::kUInt8) return cpu;
  NUMERAL_CHECK(cpu.is_floating_point(),
                "{}: expected a uint8 tensor or a floating one in [-1, 1], got {}", function,
                c10::toString(cpu.scalar_type()));
  return torch::nan_to_num(cpu.to(torch::kFloat), 0.0)
      .clamp(-1.0, 1.0)
      .add(1.0)
      .mul(127.5)
      .round()
      .to(torch::kUInt8);
}

// Replaces bytes stb_easy_font has no glyph for (it indexes a table by c - 32).
std::string printable(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c == '\t') c = ' ';
    if (c != '\n' && (c < 32 || c > 126)) c = '?';
  }
  return out;
}

int line_count(const std::string& text) {
  return 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The top y at which text of cap height is vertically centred on `centre`.
int centred_text_top(int centre, int scale) {
  return centre - kFontCapHeight * scale / 2;
}

}  // namespace

Image::Image(int width, int height, int channels, uint8_t grey)
    : width(width), height(height), channels(channels) {
  NUMERAL_CHECK(width >= 0 && height >= 0, "Image: expected a non-negative size, got {}x{}", width,
                height);
  NUMERAL_CHECK(channels == 1 || channels == 3, "Image: expected 1 or 3 channels, got {}",
                channels);
  pixels.assign(static_cast<size_t>(width) * height * channels, grey);
}

Image::Image(int width, int height, Rgb colour) : Image(width, height, 3, 0) {
  for (size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = colour.r;
    pixels[i + 1] = colour.g;
    pixels[i + 2] = colour.b;
  }
}

Image image_from_tensor(const torch::Tensor& x) {
  NUMERAL_CHECK(x.defined(), "image_from_tensor: undefined tensor");
  NUMERAL_CHECK(x.dim() == 2 || x.dim() == 3,
                "image_from_tensor: expected [C, H, W] or [H, W], got {}", shape_string(x));
  const torch::Tensor chw = x.dim() == 2 ? x.unsqueeze(0) : x;  // [C, H, W]
  NUMERAL_CHECK(chw.size(0) == 1 || chw.size(0) == 3,
                "image_from_tensor: expected 1 or 3 channels, got shape {}", shape_string(x));
  const torch::Tensor hwc = to_uint8(chw, "image_from_tensor").permute({1, 2, 0}).contiguous();
  Image image(static_cast<int>(hwc.size(1)), static_cast<int>(hwc.size(0)),
              static_cast<int>(hwc.size(2)), 0);
  std::memcpy(image.pixels.data(), hwc.data_ptr<uint8_t>(), image.pixels.size());
  return image;
}

Image make_grid(const torch::Tensor& images, int columns, int padding, int scale,
                uint8_t background) {
  NUMERAL_CHECK(images.defined() && (images.dim() == 3 || images.dim() == 4),
                "make_grid: expected images [N, C, H, W] or [N, H, W], got {}",
                images.defined() ? shape_string(images) : "an undefined tensor");
  NUMERAL_CHECK(images.size(0) > 0, "make_grid: no images (shape {})", shape_string(images));
  NUMERAL_CHECK(columns >= 1, "make_grid: expected columns >= 1, got {}", columns);
  NUMERAL_CHECK(padding >= 0, "make_grid: expected padding >= 0, got {}", padding);
  NUMERAL_CHECK(scale >= 1, "make_grid: expected scale >= 1, got {}", scale);
  const torch::Tensor nchw = images.dim() == 3 ? images.unsqueeze(1) : images;  // [N, C, H, W]
  NUMERAL_CHECK(nchw.size(1) == 1 || nchw.size(1) == 3,
                "make_grid: expected 1 or 3 channels, got shape {}", shape_string(images));
  const torch::Tensor nhwc = to_uint8(nchw, "make_grid").permute({0, 2, 3, 1}).contiguous();
  const int n = static_cast<int>(nhwc.size(0));
  const int h = static_cast<int>(nhwc.size(1)), w = static_cast<int>(nhwc.size(2));
  const int c = static_cast<int>(nhwc.size(3));
  const int cols = std::min(columns, n);
  const int rows = (n + cols - 1) / cols;
  const int cell_w = w * scale + padding, cell_h = h * scale + padding;
  Image grid(cols * cell_w + padding, rows * cell_h + padding, c, background);
  const uint8_t* data = nhwc.data_ptr<uint8_t>();
  for (int i = 0; i < n; ++i) {
    const uint8_t* tile = data + static_cast<size_t>(i) * h * w * c;
    const int x0 = padding + (i % cols) * cell_w, y0 = padding + (i / cols) * cell_h;
    for (int y = 0; y < h * scale; ++y) {
      for (int x = 0; x < w * scale; ++x) {
        const uint8_t* px = tile + (static_cast<size_t>(y / scale) * w + x / scale) * c;
        std::copy(px, px + c, &grid.at(x0 + x, y0 + y));
      }
    }
  }
  return grid;
}

Image upscale_nearest(const Image& image, int factor) {
  check_image(image, "upscale_nearest");
  NUMERAL_CHECK(factor >= 1, "upscale_nearest: expected factor >= 1, got {}", factor);
  Image out(image.width * factor, image.height * factor, image.channels, 0);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      const uint8_t* px = &image.at(x / factor, y / factor);
      std::copy(px, px + image.channels, &out.at(x, y));
    }
  }
  return out;
}

void paste(Image& dst, const Image& src, int x, int y) {
  check_image(dst, "paste");
  check_image(src, "paste");
  NUMERAL_CHECK(src.channels <= dst.channels,
                "paste: cannot paste an RGB image onto a grey one (paste the grey onto RGB)");
  const int x_begin = std::max(0, x), x_end = std::min(dst.width, x + src.width);
  const int y_begin = std::max(0, y), y_end = std::min(dst.height, y + src.height);
  for (int yy = y_begin; yy < y_end; ++yy) {
    for (int xx = x_begin; xx < x_end; ++xx) {
      for (int c = 0; c < dst.channels; ++c) {
        dst.at(xx, yy, c) = src.at(xx - x, yy - y, src.channels == 1 ? 0 : c);
      }
    }
  }
}

void draw_text(Image& image, int x, int y, const std::string& text, uint8_t grey, int scale) {
  check_image(image, "draw_text");
  NUMERAL_CHECK(scale >= 1, "draw_text: expected scale >= 1, got {}", scale);
  if (text.empty()) return;
  std::string clean = printable(text);
  // stb_easy_font fills 4 vertices of 16 bytes (x, y, z: float; colour: uint8[4]) per quad.
  std::vector<char> vertices((clean.size() * kFontMaxQuadsPerChar + 1) * 64);
  const int quads = stb_easy_font_print(0.0f, 0.0f, clean.data(), nullptr, vertices.data(),
                                        static_cast<int>(vertices.size()));
  for (int q = 0; q < quads; ++q) {
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (int v = 0; v < 4; ++v) {
      float xy[2];
      std::memcpy(xy, vertices.data() + (q * 4 + v) * 16, sizeof(xy));
      x0 = std::min(x0, xy[0]);
      x1 = std::max(x1, xy[0]);
      y0 = std::min(y0, xy[1]);
      y1 = std::max(y1, xy[1]);
    }
    const int px_begin = std::max(0, x + static_cast<int>(x0) * scale);
    const int px_end = std::min(image.width, x + static_cast<int>(x1) * scale);
    const int py_begin = std::max(0, y + static_cast<int>(y0) * scale);
    const int py_end = std::min(image.height, y + static_cast<int>(y1) * scale);
    for (int py = py_begin; py < py_end; ++py) {
      for (int px = px_begin; px < px_end; ++px) {
        for (int c = 0; c < image.channels; ++c) image.at(px, py, c) = grey;
      }
    }
  }
}

int text_width(const std::string& text, int scale) {
  if (text.empty()) return 0;
  std::string clean = printable(text);
  return stb_easy_font_width(clean.data()) * scale;
}

int text_height(const std::string& text, int scale) {
  if (text.empty()) return 0;
  return ((line_count(text) - 1) * kFontLineAdvance + kFontInkHeight) * scale;
}

Image label_columns(const std::vector<Image>& tiles, const std::vector<std::string>& captions,
                    int scale, int padding) {
  NUMERAL_CHECK(!tiles.empty(), "label_columns: no tiles");
  NUMERAL_CHECK(captions.size() == tiles.size(), "label_columns: {} tiles but {} captions",
                tiles.size(), captions.size());
  NUMERAL_CHECK(scale >= 1 && padding >= 0,
                "label_columns: expected scale >= 1 and padding >= 0, got {} and {}", scale,
                padding);
  const int tile_w = tiles[0].width, tile_h = tiles[0].height;
  int channels = 1, column_w = tile_w, caption_h = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    check_image(tiles[i], "label_columns");
    NUMERAL_CHECK(tiles[i].width == tile_w && tiles[i].height == tile_h,
                  "label_columns: tile {} is {}x{}, expected {}x{} like tile 0", i, tiles[i].width,
                  tiles[i].height, tile_w, tile_h);
    channels = std::max(channels, tiles[i].channels);
    column_w = std::max(column_w, text_width(captions[i], scale));
    caption_h = std::max(caption_h, text_height(captions[i], scale));
  }
  const int n = static_cast<int>(tiles.size());
  const int gap = std::max(padding, scale * 3);  // between a tile and its caption
  Image strip(n * (column_w + padding) + padding, padding + tile_h + gap + caption_h + padding,
              channels, kBackground);
  for (int i = 0; i < n; ++i) {
    const int column_x = padding + i * (column_w + padding);
    paste(strip, tiles[i], column_x + (column_w - tile_w) / 2, padding);
    draw_text(strip, column_x + (column_w - text_width(captions[i], scale)) / 2,
              padding + tile_h + gap, captions[i], 0, scale);
  }
  return strip;
}

Image label_rows(const Image& grid, const std::vector<std::string>& row_labels, int row_height,
                 int top, int scale) {
  check_image(grid, "label_rows");
  NUMERAL_CHECK(row_height >= 1 && scale >= 1,
                "label_rows: expected row_height >= 1 and scale >= 1, got {} and {}", row_height,
                scale);
  NUMERAL_CHECK(
      top >= 0 && top + static_cast<int64_t>(row_labels.size()) * row_height <= grid.height,
      "label_rows: {} rows of {} px from y = {} do not fit a grid {} px tall", row_labels.size(),
      row_height, top, grid.height);
  const int margin = 4 * scale;
  int label_w = 0;
  for (const std::string& label : row_labels) label_w = std::max(label_w, text_width(label, scale));
  const int column_w = label_w + 2 * margin;
  Image out(column_w + grid.width, grid.height, grid.channels, kBackground);
  paste(out, grid, column_w, 0);
  for (size_t i = 0; i < row_labels.size(); ++i) {
    const int centre = top + static_cast<int>(i) * row_height + row_height / 2;
    const int lines_below = (line_count(row_labels[i]) - 1) * kFontLineAdvance * scale / 2;
    draw_text(out, column_w - margin - text_width(row_labels[i], scale),
              centred_text_top(centre, scale) - lines_below, row_labels[i], 0, scale);
  }
  return out;
}

Image add_title(const Image& image, const std::string& title, int scale) {
  check_image(image, "add_title");
  NUMERAL_CHECK(scale >= 1, "add_title: expected scale >= 1, got {}", scale);
  const int margin = 4 * scale;
  const int band_h = text_height(title, scale) + 2 * margin;
  const int width = std::max(image.width, text_width(title, scale) + 2 * margin);
  Image out(width, band_h + image.height, image.channels, kBackground);
  paste(out, image, (width - image.width) / 2, band_h);
  draw_text(out, (width - text_width(title, scale)) / 2, margin, title, 0, scale);
  return out;
}

std::string encode_png(const Image& image) {
  check_image(image, "encode_png");
  NUMERAL_CHECK(image.width > 0 && image.height > 0, "encode_png: empty image ({}x{})", image.width,
                image.height);
  std::string bytes;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                               static_cast<size_t>(size));
  };
  const int ok = stbi_write_png_to_func(append, &bytes, image.width, image.height, image.channels,
                                        image.pixels.data(), image.width * image.channels);
  NUMERAL_CHECK(ok != 0, "encode_png: PNG encoding failed");
  return bytes;
}

void write_png(const std::filesystem::path& path, const Image& image) {
  write_file_atomic(path, encode_png(image));
}

Image read_png(const std::filesystem::path& path) {
  const std::string bytes = read_file(path);
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                            static_cast<int>(bytes.size()), &width, &height, &channels, 0),
      stbi_image_free);
  NUMERAL_CHECK(data != nullptr, "{}: cannot decode image: {}", path.string(),
                stbi_failure_reason());
  // stb_image gives 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) channels; keep grey or RGB.
  const int kept = channels <= 2 ? 1 : 3;
  Image image(width, height, kept, 0);
  for (size_t i = 0; i < static_cast<size_t>(width) * height; ++i) {
    for (int c = 0; c < kept; ++c) image.pixels[i * kept + c] = data.get()[i * channels + c];
  }
  return image;
}

namespace {

// 6x7x6 colour cube: index = 42 * r_level + 6 * g_level + b_level.
int cube_index(uint8_t r, uint8_t g, uint8_t b) {
  const int r_level = (r * 5 + 127) / 255, g_level = (g * 6 + 127) / 255,
            b_level = (b * 5 + 127) / 255;
  return 42 * r_level + 6 * g_level + b_level;
}

struct GifColorMapDeleter {
  void operator()(ColorMapObject* map) const { GifFreeMapObject(map); }
};

// Owns an open giflib encoder or decoder; closes it (freeing it) unless closed explicitly.
struct GifCloser {
  GifFileType* gif;
  bool writing;
  ~GifCloser() {
    if (gif == nullptr) return;
    int ignored = 0;
    if (writing) {
      EGifCloseFile(gif, &ignored);
    } else {
      DGifCloseFile(gif, &ignored);
    }
  }
};

}  // namespace

void write_gif(const std::filesystem::path& path, const std::vector<Image>& frames,
               int delay_centiseconds, int loop_count) {
  const std::string name = path.string();
  NUMERAL_CHECK(!frames.empty(), "write_gif {}: no frames", name);
  NUMERAL_CHECK(delay_centiseconds >= 0 && delay_centiseconds <= 65535,
                "write_gif {}: expected a delay of 0..65535 centiseconds, got {}", name,
                delay_centiseconds);
  NUMERAL_CHECK(loop_count >= 0 && loop_count <= 65535,
                "write_gif {}: expected loop_count 0 (forever)..65535, got {}", name, loop_count);
  const Image& first = frames[0];
  for (size_t i = 0; i < frames.size(); ++i) {
    check_image(frames[i], "write_gif");
    NUMERAL_CHECK(frames[i].width == first.width && frames[i].height == first.height &&
                      frames[i].channels == first.channels,
                  "write_gif {}: frame {} is {}x{}x{}, expected {}x{}x{} like frame 0", name, i,
                  frames[i].width, frames[i].height, frames[i].channels, first.width, first.height,
                  first.channels);
  }
  NUMERAL_CHECK(
      first.width > 0 && first.width <= 65535 && first.height > 0 && first.height <= 65535,
      "write_gif {}: frame size {}x{} is outside 1..65535", name, first.width, first.height);

  GifColorType palette[256];
  for (int i = 0; i < 256; ++i) {
    if (first.channels == 1) {
      palette[i] = {static_cast<GifByteType>(i), static_cast<GifByteType>(i),
                    static_cast<GifByteType>(i)};
    } else if (i < 252) {
      palette[i] = {static_cast<GifByteType>(i / 42 * 51),
                    static_cast<GifByteType>((i / 6 % 7) * 255 / 6),
                    static_cast<GifByteType>(i % 6 * 51)};
    } else {
      palette[i] = {0, 0, 0};
    }
  }
  const std::unique_ptr<ColorMapObject, GifColorMapDeleter> color_map(
      GifMakeMapObject(256, palette));
  NUMERAL_CHECK(color_map != nullptr, "write_gif {}: out of memory", name);

  std::string bytes;
  const auto append = [](GifFileType* gif, const GifByteType* data, int size) {
    static_cast<std::string*>(gif->UserData)
        ->append(reinterpret_cast<const char*>(data), static_cast<size_t>(size));
    return size;
  };
  int error = 0;
  GifCloser encoder{EGifOpen(&bytes, append, &error), true};
  NUMERAL_CHECK(encoder.gif != nullptr, "write_gif {}: {}", name, GifErrorString(error));
  GifFileType* gif = encoder.gif;
  const auto check = [&](int status, const char* what) {
    NUMERAL_CHECK(status == GIF_OK, "write_gif {}: {} failed: {}", name, what,
                  GifErrorString(gif->Error));
  };
  EGifSetGifVersion(gif, true);  // GIF89a: needed for delays and looping
  check(EGifPutScreenDesc(gif, first.width, first.height, 8, 0, color_map.get()),
        "screen descriptor");
  // NETSCAPE2.0 application extension: sub-block 1 holds the little-endian loop count.
  const GifByteType loop[3] = {1, static_cast<GifByteType>(loop_count & 0xff),
                               static_cast<GifByteType>(loop_count >> 8)};
  check(EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE), "loop extension");
  check(EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0"), "loop extension");
  check(EGifPutExtensionBlock(gif, 3, loop), "loop extension");
  check(EGifPutExtensionTrailer(gif), "loop extension");

  std::vector<GifByteType> row(static_cast<size_t>(first.width));
  for (const Image& frame : frames) {
    GraphicsControlBlock control{};
    control.DisposalMode = DISPOSE_DO_NOT;
    control.UserInputFlag = false;
    control.DelayTime = delay_centiseconds;
    control.TransparentColor = NO_TRANSPARENT_COLOR;
    GifByteType extension[4];
    const size_t extension_size = EGifGCBToExtension(&control, extension);
    check(
        EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(extension_size), extension),
        "frame delay");
    check(EGifPutImageDesc(gif, 0, 0, frame.width, frame.height, false, nullptr),
          "image descriptor");
    for (int y = 0; y < frame.height; ++y) {
      for (int x = 0; x < frame.width; ++x) {
        row[x] = frame.channels == 1
                     ? frame.at(x, y)
                     : static_cast<GifByteType>(
                           cube_index(frame.at(x, y, 0), frame.at(x, y, 1), frame.at(x, y, 2)));
      }
      check(EGifPutLine(gif, row.data(), frame.width), "pixel data");
    }
  }
  encoder.gif = nullptr;
  NUMERAL_CHECK(EGifCloseFile(gif, &error) == GIF_OK, "write_gif {}: {}", name,
                GifErrorString(error));
  write_file_atomic(path, bytes);
}

std::vector<Image> read_gif(const std::filesystem::path& path) {
  const std::string name = path.string();
  struct Reader {
    const std::string bytes;
    size_t position = 0;
  } reader{read_file(path)};
  const auto read = [](GifFileType* gif, GifByteType* out, int size) {
    auto* r = static_cast<Reader*>(gif->UserData);
    const size_t n = std::min(static_cast<size_t>(size), r->bytes.size() - r->position);
    std::memcpy(out, r->bytes.data() + r->position, n);
    r->position += n;
    return static_cast<int>(n);
  };
  int error = 0;
  GifCloser decoder{DGifOpen(&reader, read, &error), false};
  NUMERAL_CHECK(decoder.gif != nullptr, "{}: cannot read GIF: {}", name, GifErrorString(error));
  GifFileType* gif = decoder.gif;
  NUMERAL_CHECK(DGifSlurp(gif) == GIF_OK, "{}: cannot read GIF: {}", name,
                GifErrorString(gif->Error));
  NUMERAL_CHECK(gif->ImageCount > 0 && gif->SWidth > 0 && gif->SHeight > 0, "{}: GIF has no frames",
                name);

  const auto is_grey = [](const ColorMapObject* map) {
    if (map == nullptr) return true;
    for (int i = 0; i < map->ColorCount; ++i) {
      const GifColorType& c = map->Colors[i];
      if (c.Red != c.Green || c.Green != c.Blue) return false;
    }
    return true;
  };
  bool grey = is_grey(gif->SColorMap);
  for (int i = 0; i < gif->ImageCount; ++i)
    grey = grey && is_grey(gif->SavedImages[i].ImageDesc.ColorMap);
  const int channels = grey ? 1 : 3;

  std::vector<Image> frames;
  Image canvas(gif->SWidth, gif->SHeight, channels, 0);
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& saved = gif->SavedImages[i];
    const GifImageDesc& desc = saved.ImageDesc;
    const ColorMapObject* map = desc.ColorMap != nullptr ? desc.ColorMap : gif->SColorMap;
    NUMERAL_CHECK(map != nullptr, "{}: frame {} has no colour table", name, i);
    GraphicsControlBlock control{};
    control.TransparentColor = NO_TRANSPARENT_COLOR;
    DGifSavedExtensionToGCB(gif, i, &control);
    for (int y = 0; y < desc.Height; ++y) {
      for (int x = 0; x < desc.Width; ++x) {
        const int index = saved.RasterBits[static_cast<size_t>(y) * desc.Width + x];
        const int cx = desc.Left + x, cy = desc.Top + y;
        if (index == control.TransparentColor || index >= map->ColorCount) continue;
        if (cx >= canvas.width || cy >= canvas.height) continue;
        const GifColorType& c = map->Colors[index];
        canvas.at(cx, cy, 0) = c.Red;
        if (channels == 3) {
          canvas.at(cx, cy, 1) = c.Green;
          canvas.at(cx, cy, 2) = c.Blue;
        }
      }
    }
    frames.push_back(canvas);
  }
  return frames;
}

}  // namespace numeral
