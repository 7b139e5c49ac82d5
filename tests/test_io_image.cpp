// Pictures: PNG and GIF round trips, grid geometry, tensor mapping, text bounds, plots.
#include <gif_lib.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/io/image.h"
#include "numeral/io/plot.h"
#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

Image random_image(int width, int height, int channels, int seed) {
  Image image(width, height, channels, 0);
  uint32_t state = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (uint8_t& p : image.pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return image;
}

TEST(Image, ConstructorFillsGreyAndColour) {
  const Image grey(3, 2, 1, 7);
  EXPECT_EQ(grey.pixels, std::vector<uint8_t>(6, 7));
  const Image colour(2, 2, Rgb{1, 2, 3});
  ASSERT_EQ(colour.channels, 3);
  EXPECT_EQ(colour.at(1, 1, 0), 1);
  EXPECT_EQ(colour.at(1, 1, 1), 2);
  EXPECT_EQ(colour.at(1, 1, 2), 3);
  EXPECT_THROW(Image(2, 2, 2), Error);
}

TEST(Image, PngRoundTripGreyAndRgb) {
  TempDir dir;
  for (int channels : {1, 3}) {
    const Image original = random_image(37, 23, channels, channels);
    const fs::path path = dir.path() / ("round_trip_" + std::to_string(channels) + ".png");
    write_png(path, original);
    const Image decoded = read_png(path);
    EXPECT_EQ(decoded.width, original.width);
    EXPECT_EQ(decoded.height, original.height);
    EXPECT_EQ(decoded.channels, channels);
    EXPECT_EQ(decoded.pixels, original.pixels);
  }
}

TEST(Image, ReadPngErrorsNameTheFile) {
  TempDir dir;
  const fs::path bogus = dir.path() / "bogus.png";
  write_file_atomic(bogus, std::string("not a png at all"));
  try {
    read_png(bogus);
    FAIL() << "expected numeral::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bogus.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_png(dir.path() / "missing.png"), Error);
}

TEST(Image, UnwritablePathThrowsAndLeavesNothing) {
  TempDir dir;
  const fs::path blocker = dir.path() / "a_file";
  std::ofstream(blocker) << "x";
  const fs::path target = blocker / "out.png";
  EXPECT_THROW(write_png(target, Image(4, 4, 1, 0)), Error);
  EXPECT_THROW(write_gif(blocker / "out.gif", {Image(4, 4, 1, 0)}, 10), Error);
  EXPECT_FALSE(fs::exists(target));
  size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);  // only the blocking file
  // Also a path that is a directory.
  EXPECT_THROW(write_png(dir.path(), Image(4, 4, 1, 0)), Error);
}

TEST(Image, FromTensorMapsModelRangeToBytes) {
  const torch::Tensor x = torch::tensor({-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, 0.5f}).reshape({1, 2, 3});
  const Image image = image_from_tensor(x);
  ASSERT_EQ(image.width, 3);
  ASSERT_EQ(image.height, 2);
  ASSERT_EQ(image.channels, 1);
  // -1 -> 0, 1 -> 255, 0 -> 127.5 rounds to 128, clamped ends, 0.5 -> 191.25 -> 191.
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{0, 255, 128, 0, 255, 191}));

  // [H, W] uint8 passes through; [3, H, W] becomes HWC.
  const torch::Tensor bytes = torch::arange(6, torch::kUInt8).reshape({2, 3});
  EXPECT_EQ(image_from_tensor(bytes).pixels, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5}));
  const torch::Tensor rgb = torch::arange(12, torch::kUInt8).reshape({3, 2, 2});
  const Image colour = image_from_tensor(rgb);
  ASSERT_EQ(colour.channels, 3);
  EXPECT_EQ(colour.at(1, 0, 0), 1);
  EXPECT_EQ(colour.at(1, 0, 1), 5);
  EXPECT_EQ(colour.at(1, 0, 2), 9);

  EXPECT_THROW(image_from_tensor(torch::zeros({2, 4, 4})), Error);
  EXPECT_THROW(image_from_tensor(torch::zeros({4}, torch::kInt32)), Error);
  EXPECT_THROW(image_from_tensor(torch::zeros({4, 4}, torch::kInt32)), Error);
}

TEST(Image, MakeGridGeometryAndTilePlacement) {
  const int n = 7, h = 5, w = 4, columns = 3, padding = 2, scale = 3;
  const torch::Tensor images = torch::randint(0, 256, {n, 1, h, w}, torch::kUInt8);
  const Image grid = make_grid(images, columns, padding, scale);
  const int rows = 3;
  EXPECT_EQ(grid.width, columns * (w * scale + padding) + padding);
  EXPECT_EQ(grid.height, rows * (h * scale + padding) + padding);
  EXPECT_EQ(grid.channels, 1);
  for (int i = 0; i < n; ++i) {
    const int x0 = padding + (i % columns) * (w * scale + padding);
    const int y0 = padding + (i / columns) * (h * scale + padding);
    const auto tile = images[i][0];
    for (int y = 0; y < h * scale; ++y) {
      for (int x = 0; x < w * scale; ++x) {
        ASSERT_EQ(grid.at(x0 + x, y0 + y), tile[y / scale][x / scale].item<uint8_t>())
            << "tile " << i << " at " << x << "," << y;
      }
    }
  }
  // Padding and the two empty slots of the last row are background.
  EXPECT_EQ(grid.at(0, 0), kBackground);
  EXPECT_EQ(grid.at(padding + w * scale, padding), kBackground);
  EXPECT_EQ(grid.at(grid.width - padding - 1, grid.height - padding - 1), kBackground);

  // Fewer images than columns: the grid narrows. Floats in [-1, 1] map to 0 / 255.
  const Image strip = make_grid(torch::ones({2, 1, 3, 3}), 10, 1);
  EXPECT_EQ(strip.width, 2 * (3 + 1) + 1);
  EXPECT_EQ(strip.height, 3 + 2);
  EXPECT_EQ(strip.at(1, 1), 255);
  const Image dark = make_grid(-torch::ones({1, 3, 2, 2}), 1, 1, 1, 200);
  EXPECT_EQ(dark.channels, 3);
  EXPECT_EQ(dark.at(1, 1, 2), 0);
  EXPECT_EQ(dark.at(0, 0, 1), 200);

  EXPECT_THROW(make_grid(torch::zeros({0, 1, 4, 4}), 2), Error);
  EXPECT_THROW(make_grid(torch::zeros({2, 1, 4, 4}), 0), Error);
  EXPECT_THROW(make_grid(torch::zeros({4, 4}), 2), Error);
}

TEST(Image, UpscaleNearestAndPaste) {
  const Image small = random_image(3, 2, 3, 5);
  const Image big = upscale_nearest(small, 4);
  ASSERT_EQ(big.width, 12);
  ASSERT_EQ(big.height, 8);
  for (int y = 0; y < big.height; ++y) {
    for (int x = 0; x < big.width; ++x) {
      for (int c = 0; c < 3; ++c) ASSERT_EQ(big.at(x, y, c), small.at(x / 4, y / 4, c));
    }
  }
  EXPECT_THROW(upscale_nearest(small, 0), Error);

  Image canvas(5, 5, 3, 9);
  const Image grey(3, 3, 1, 100);
  paste(canvas, grey, 3, -1);  // clipped at the right and the top
  EXPECT_EQ(canvas.at(3, 0, 2), 100);
  EXPECT_EQ(canvas.at(4, 1, 0), 100);
  EXPECT_EQ(canvas.at(4, 2, 0), 9);
  EXPECT_EQ(canvas.at(2, 0, 0), 9);
  Image grey_canvas(2, 2, 1);
  EXPECT_THROW(paste(grey_canvas, canvas, 0, 0), Error);
}

TEST(Image, DrawTextStaysInsideItsBox) {
  for (int scale : {1, 2, 3}) {
    for (const std::string text :
         {"digit 0", "0% 20% 100%", "gjpqy|_", "two\nlines", "caf\xc3\xa9"}) {
      Image image(200, 120, 1, 255);
      const int x = 10, y = 12;
      draw_text(image, x, y, text, 0, scale);
      const int w = text_width(text, scale), h = text_height(text, scale);
      int inked = 0;
      for (int py = 0; py < image.height; ++py) {
        for (int px = 0; px < image.width; ++px) {
          if (image.at(px, py) == 255) continue;
          ++inked;
          ASSERT_TRUE(px >= x && px < x + w && py >= y && py < y + h)
              << "'" << text << "' scale " << scale << " inked (" << px << ", " << py
              << ") outside " << w << "x" << h;
        }
      }
      EXPECT_GT(inked, 0) << text;
    }
  }
  EXPECT_EQ(text_width("0", 2), 2 * text_width("0", 1));
  EXPECT_GT(text_width("00", 1), text_width("0", 1));
  EXPECT_EQ(text_width("", 3), 0);
  EXPECT_EQ(text_height("", 3), 0);

  Image image(40, 20, 3, 255);
  const std::vector<uint8_t> before = image.pixels;
  draw_text(image, 5, 5, "", 0, 2);
  EXPECT_EQ(image.pixels, before);
  draw_text(image, 30, 15, "clipped", 0, 2);  // runs off the edge without harm
  EXPECT_NE(image.pixels, before);
}

TEST(Image, CaptionsRowLabelsAndTitle) {
  const std::vector<Image> tiles(6, Image(112, 112, 1, 0));
  const std::vector<std::string> captions{"0%", "20%", "40%", "60%", "80%", "100%"};
  const Image strip = label_columns(tiles, captions, 2, 4);
  EXPECT_EQ(strip.width, 6 * (112 + 4) + 4);
  EXPECT_GT(strip.height, 112 + 8 + text_height("0%", 2));
  EXPECT_EQ(strip.at(4, 4), 0);  // tile 0's top-left pixel
  EXPECT_EQ(strip.at(0, 0), kBackground);
  // A caption wider than its tile widens every column; tiles stay centred.
  const Image wide = label_columns({Image(10, 10, 1, 0)}, {"a long caption"}, 2, 4);
  EXPECT_EQ(wide.width, text_width("a long caption", 2) + 8);
  EXPECT_EQ(wide.at(wide.width / 2, 8), 0);
  EXPECT_THROW(label_columns(tiles, {"a"}), Error);
  EXPECT_THROW(label_columns({Image(2, 2, 1), Image(3, 2, 1)}, {"a", "b"}), Error);

  const Image grid(100, 10 * 30 + 2, 1, 0);
  const Image labelled =
      label_rows(grid, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, 30, 1);
  EXPECT_EQ(labelled.height, grid.height);
  EXPECT_GT(labelled.width, grid.width);
  EXPECT_EQ(labelled.at(labelled.width - 1, 0), 0);  // the grid sits at the right
  EXPECT_THROW(label_rows(grid, std::vector<std::string>(11, "x"), 30), Error);

  const Image titled = add_title(Image(10, 10, 1, 0), "a title wider than the image", 2);
  EXPECT_GE(titled.width, text_width("a title wider than the image", 2));
  EXPECT_GT(titled.height, 10 + text_height("a", 2));
}

TEST(Image, GifRoundTripKeepsGreysFramesAndLoop) {
  TempDir dir;
  std::vector<Image> frames;
  for (int i = 0; i < 4; ++i) frames.push_back(random_image(19, 11, 1, 10 + i));
  const fs::path path = dir.path() / "anim.gif";
  write_gif(path, frames, 7, 0);
  const std::vector<Image> decoded = read_gif(path);
  ASSERT_EQ(decoded.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(decoded[i].channels, 1);
    EXPECT_EQ(decoded[i].pixels, frames[i].pixels) << "frame " << i;
  }

  // The file is GIF89a with a NETSCAPE2.0 loop-forever block and the delay on every frame.
  const std::string bytes = read_file(path);
  EXPECT_EQ(bytes.substr(0, 6), "GIF89a");
  const size_t netscape = bytes.find("NETSCAPE2.0");
  ASSERT_NE(netscape, std::string::npos);
  EXPECT_EQ(bytes.substr(netscape + 11, 4), std::string("\x03\x01\x00\x00", 4));
  int error = 0;
  GifFileType* gif = DGifOpenFileName(path.c_str(), &error);
  ASSERT_NE(gif, nullptr);
  ASSERT_EQ(DGifSlurp(gif), GIF_OK);
  EXPECT_EQ(gif->ImageCount, 4);
  for (int i = 0; i < gif->ImageCount; ++i) {
    GraphicsControlBlock control{};
    ASSERT_EQ(DGifSavedExtensionToGCB(gif, i, &control), GIF_OK);
    EXPECT_EQ(control.DelayTime, 7);
  }
  DGifCloseFile(gif, &error);

  // A finite loop count is stored little-endian.
  write_gif(path, frames, 5, 300);
  const std::string looped = read_file(path);
  EXPECT_EQ(looped.substr(looped.find("NETSCAPE2.0") + 11, 4), std::string("\x03\x01\x2c\x01", 4));
}

TEST(Image, GifRgbFramesUseTheColourCube) {
  TempDir dir;
  Image frame(4, 2, Rgb{255, 0, 0});
  frame.at(1, 0, 0) = 0;
  frame.at(1, 0, 2) = 255;  // blue
  frame.at(2, 1, 1) = 128;  // (255, 128, 0): green level 3 of 6 is 127
  const fs::path path = dir.path() / "colour.gif";
  write_gif(path, {frame, frame}, 10);
  const std::vector<Image> decoded = read_gif(path);
  ASSERT_EQ(decoded.size(), 2u);
  ASSERT_EQ(decoded[0].channels, 3);
  EXPECT_EQ(decoded[0].at(0, 0, 0), 255);
  EXPECT_EQ(decoded[0].at(1, 0, 2), 255);
  EXPECT_EQ(decoded[0].at(1, 0, 0), 0);
  EXPECT_EQ(decoded[0].at(2, 1, 1), 127);
}

TEST(Image, GifRejectsMismatchedFrames) {
  TempDir dir;
  const fs::path path = dir.path() / "bad.gif";
  EXPECT_THROW(write_gif(path, {Image(4, 4, 1), Image(5, 4, 1)}, 10), Error);
  EXPECT_THROW(write_gif(path, {Image(4, 4, 1), Image(4, 4, 3)}, 10), Error);
  EXPECT_THROW(write_gif(path, {}, 10), Error);
  EXPECT_THROW(write_gif(path, {Image(4, 4, 1)}, -1), Error);
  EXPECT_FALSE(fs::exists(path));
}

TEST(Plot, NiceTicks) {
  EXPECT_EQ(nice_ticks(0.0, 1.0, false, 5), (std::vector<double>{0.0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_EQ(nice_ticks(0.0, 10000.0, false, 5),
            (std::vector<double>{0, 2000, 4000, 6000, 8000, 10000}));
  const std::vector<double> small = nice_ticks(0.013, 0.061, false, 5);
  EXPECT_EQ(small, (std::vector<double>{0.02, 0.03, 0.04, 0.05, 0.06}));
  EXPECT_EQ(nice_ticks(1e-3, 10.0, true, 6), (std::vector<double>{1e-3, 1e-2, 1e-1, 1, 10}));
  EXPECT_EQ(nice_ticks(1e-8, 1e4, true, 6),
            (std::vector<double>{1e-8, 1e-6, 1e-4, 1e-2, 1, 1e2, 1e4}));
  EXPECT_EQ(nice_ticks(0.03, 0.6, true, 6), (std::vector<double>{0.05, 0.1, 0.2, 0.5}));
  EXPECT_THROW(nice_ticks(1.0, 1.0), Error);
  EXPECT_THROW(nice_ticks(0.0, 1.0, true), Error);
}

TEST(Plot, DrawsSeriesInsideTheAxes) {
  Series line{"loss", {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}};
  PlotOptions options;
  options.title = "t";
  options.width = 640;
  options.height = 400;
  const Image plot = plot_lines({line}, options);
  EXPECT_EQ(plot.width, 640);
  EXPECT_EQ(plot.height, 400);
  EXPECT_EQ(plot.channels, 3);
  // The diagonal crosses the middle column of the axes; the legend (right) has its own swatch, so
  // look only left of the image centre plus a little.
  const Rgb colour = series_colour(0);
  const auto is_colour = [&](int x, int y) {
    return plot.at(x, y, 0) == colour.r && plot.at(x, y, 1) == colour.g &&
           plot.at(x, y, 2) == colour.b;
  };
  int hits = 0;
  for (int y = 0; y < plot.height; ++y) hits += is_colour(plot.width / 2 - 60, y);
  EXPECT_GE(hits, 2);  // at least 2 px thick
  EXPECT_FALSE(is_colour(0, 0));
  EXPECT_FALSE(is_colour(plot.width / 2 - 60, plot.height - 1));

  // Distinct colours for ten series.
  for (size_t i = 0; i < 10; ++i) {
    for (size_t j = i + 1; j < 10; ++j) {
      const Rgb a = series_colour(i), b = series_colour(j);
      EXPECT_FALSE(a.r == b.r && a.g == b.g && a.b == b.b) << i << " " << j;
    }
  }
}

TEST(Plot, HandlesOddInputs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  PlotOptions log_options;
  log_options.log_y = true;
  // NaN, inf and non-positive values on a log axis are skipped; a single point is a marker.
  EXPECT_NO_THROW(
      plot_lines({{"a", {0, 1, 2, 3}, {1, nan, inf, 0.5}}, {"b", {1}, {2}}}, log_options));
  EXPECT_NO_THROW(plot_lines({{"a", {0, 1}, {-1, 0}}}, log_options));
  EXPECT_NO_THROW(plot_lines({{"", {}, {}}}));
  const Image single = plot_lines({{"", {5}, {3}}});
  int coloured = 0;
  const Rgb colour = series_colour(0);
  for (int y = 0; y < single.height; ++y) {
    for (int x = 0; x < single.width; ++x) {
      coloured += single.at(x, y, 0) == colour.r && single.at(x, y, 1) == colour.g &&
                  single.at(x, y, 2) == colour.b;
    }
  }
  EXPECT_GT(coloured, 4);

  EXPECT_THROW(plot_lines({}), Error);
  EXPECT_THROW(plot_lines({{"a", {0, 1}, {1}}}), Error);
  PlotOptions tiny;
  tiny.width = 50;
  EXPECT_THROW(plot_lines({{"a", {0}, {1}}}, tiny), Error);
}

}  // namespace
}  // namespace numeral
