#pragma once
// Pictures for people: an 8-bit image type, tensors to images, sample grids, text and captions,
// PNG and animated GIF files.
//
// Convention for every numeral picture: digits stay as MNIST has them (white on black) inside
// their tiles; padding, margins and caption bands are white (kBackground) with black text.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace numeral {

// The grey of padding, margins and caption bands in all numeral pictures (white).
inline constexpr uint8_t kBackground = 255;

// An RGB colour.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

// An 8-bit image, row-major HWC: channel c of pixel (x, y) is pixels[(y * width + x) * channels
// + c]. channels is 1 (grey) or 3 (RGB).
struct Image {
  int width = 0, height = 0, channels = 1;
  std::vector<uint8_t> pixels;  // [height, width, channels]

  Image() = default;
  // A width x height image with every channel of every pixel set to `grey`.
  Image(int width, int height, int channels, uint8_t grey = kBackground);
  // A width x height RGB image filled with `colour`.
  Image(int width, int height, Rgb colour);

  // Channel c of pixel (x, y); no bounds check.
  uint8_t& at(int x, int y, int c = 0) {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
  const uint8_t& at(int x, int y, int c = 0) const {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
};

// Converts one image tensor: x is [C, H, W] (C = 1 or 3) or [H, W], either uint8 (0..255) or
// floating in the model's range [-1, 1] (clamped, then mapped to 0..255 with rounding; NaN shows
// as mid grey). Any device.
Image image_from_tensor(const torch::Tensor& x);

// Tiles N images row-major into `columns` columns (fewer if N is smaller), each upscaled by the
// integer `scale` (nearest neighbour), with `padding` pixels of `background` around and between
// tiles. images is [N, C, H, W] or [N, H, W], uint8 or float in [-1, 1]. The result is
// columns * (W * scale + padding) + padding wide and rows * (H * scale + padding) + padding tall;
// tile i's top-left corner is at (padding + (i % columns) * (W * scale + padding), same for rows).
Image make_grid(const torch::Tensor& images, int columns, int padding = 2, int scale = 1,
                uint8_t background = kBackground);

// Enlarges an image by an integer factor (each pixel becomes a factor x factor block).
Image upscale_nearest(const Image& image, int factor);

// Copies `src` onto `dst` with its top-left corner at (x, y), clipped to `dst`. A grey `src` may
// be pasted onto an RGB `dst`, not the reverse.
void paste(Image& dst, const Image& src, int x, int y);

// Draws `text` (printable ASCII and '\n'; other bytes show as '?') with the stb_easy_font bitmap
// font, `scale` pixels per font unit, top-left corner at (x, y), in `grey` on every channel.
// Ink stays inside [x, x + text_width) x [y, y + text_height); clipped to the image.
void draw_text(Image& image, int x, int y, const std::string& text, uint8_t grey = 0,
               int scale = 1);

// The width in pixels draw_text advances over for `text` (its widest line).
int text_width(const std::string& text, int scale = 1);

// The height in pixels draw_text may ink for `text`, descenders included (0 when empty).
int text_height(const std::string& text, int scale = 1);

// A horizontal strip of equally sized tiles with captions[i] centred under tiles[i], e.g. a noise
// progression captioned "0%", "20%", ..., "100%". Columns widen to fit long captions. The result
// is RGB if any tile is.
Image label_columns(const std::vector<Image>& tiles, const std::vector<std::string>& captions,
                    int scale = 2, int padding = 4);

// Adds a white column at the left of `grid` with row_labels[i] vertically centred on the band
// [top + i * row_height, top + (i + 1) * row_height). For a make_grid result use
// row_height = H * scale + padding and top = padding / 2.
Image label_rows(const Image& grid, const std::vector<std::string>& row_labels, int row_height,
                 int top = 0, int scale = 2);

// Adds a white band above `image` with `title` centred in it (widening the picture if needed).
Image add_title(const Image& image, const std::string& title, int scale = 2);

// The PNG file's bytes for an image.
std::string encode_png(const Image& image);

// Writes a PNG atomically (write_file_atomic); throws numeral::Error naming the path.
void write_png(const std::filesystem::path& path, const Image& image);

// Reads a PNG (or any format stb_image decodes) as 1 channel (grey files) or 3 (colour files;
// alpha is dropped); throws numeral::Error naming the file.
Image read_png(const std::filesystem::path& path);

// Writes an animated GIF that shows each frame for delay_centiseconds and repeats loop_count
// times (0 = forever, via the NETSCAPE2.0 extension). Frames must share width, height and
// channels. Grey frames use a 256-grey palette (exact); RGB frames are quantised to a 6x7x6
// colour cube (levels of 51 for red and blue, 42.5 for green). To hold the last frame longer,
// repeat it. Written atomically; throws numeral::Error naming the path.
void write_gif(const std::filesystem::path& path, const std::vector<Image>& frames,
               int delay_centiseconds, int loop_count = 0);

// Reads every frame of a GIF as full-canvas images (each drawn over the previous; disposal modes
// are ignored): 1 channel if every palette is grey, else 3.
std::vector<Image> read_gif(const std::filesystem::path& path);

}  // namespace numeral
