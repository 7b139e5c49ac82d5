// Image sources beyond IDX (src/numeral/data: image_folder, cifar), on files the tests write: odd
// sizes, grey and RGB, PNG, JPEG and BMP, a corrupt file, an empty class folder, a non-image file,
// CIFAR-10 and CIFAR-100 records with known pixels, truncated files and bad labels.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <torch/torch.h>

#include "numeral/data/cifar.h"
#include "numeral/data/dataset.h"
#include "numeral/data/image_folder.h"
#include "numeral/io/image.h"
#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

// A width x height image whose pixel (x, y) channel c is (x * 7 + y * 3 + c * 50) % 256.
Image pattern(int width, int height, int channels) {
  Image im(width, height, channels);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c)
        im.at(x, y, c) = static_cast<uint8_t>((x * 7 + y * 3 + c * 50) % 256);
    }
  }
  return im;
}

void write_bmp(const fs::path& path, const Image& im) {
  ASSERT_TRUE(stbi_write_bmp(path.c_str(), im.width, im.height, im.channels, im.pixels.data()));
}

void write_jpg(const fs::path& path, const Image& im) {
  ASSERT_TRUE(stbi_write_jpg(path.c_str(), im.width, im.height, im.channels, im.pixels.data(), 95));
}

TEST(ImageFolder, ReadsClassesInNameOrderAndFitsOddSizes) {
  TempDir dir;
  fs::create_directories(dir / "cat");
  fs::create_directories(dir / "ant");
  write_png(dir / "cat" / "a.png", pattern(20, 30, 1));  // grey, portrait
  write_bmp(dir / "cat" / "b.bmp", pattern(40, 40, 3));  // RGB
  write_jpg(dir / "ant" / "c.JPG", pattern(33, 17, 3));  // RGB, landscape, upper-case extension
  ASSERT_TRUE(looks_like_image_folder(dir.path()));
  ImageFolderOptions o;
  o.image_size = 16;
  const auto f = read_image_folder(dir.path(), o);
  EXPECT_EQ(f.class_names, (std::vector<std::string>{"ant", "cat"}));
  ASSERT_EQ(f.data.images.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));  // colour: any is RGB
  EXPECT_EQ(f.data.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(f.data.labels, torch::tensor({0, 1, 1}, torch::kInt64)));
  EXPECT_TRUE(f.warnings.empty());
  // The grey image became RGB by replication.
  EXPECT_TRUE(torch::equal(f.data.images[1][0], f.data.images[1][2]));
  // Without a size, the first image's shorter side (17) is used; grey forced.
  o.image_size = 0;
  o.channels = 1;
  const auto grey = read_image_folder(dir.path(), o);
  EXPECT_EQ(grey.data.images.sizes(), (std::vector<int64_t>{3, 1, 17, 17}));
}

TEST(ImageFolder, FitImageResizesCropsAndConvertsChannels) {
  // A constant image stays constant through the resize.
  const auto flat = torch::full({1, 9, 13}, 77, torch::kUInt8);
  const auto out = fit_image(flat, 5, 1);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 5, 5}));
  EXPECT_EQ(out.min().item<int>(), 77);
  EXPECT_EQ(out.max().item<int>(), 77);
  // No resize when the shorter side is the size: the centre columns are kept.
  auto wide = torch::arange(8, torch::kInt).to(torch::kUInt8).view({1, 1, 8}).expand({1, 4, 8});
  const auto crop = fit_image(wide.contiguous(), 4, 1);
  EXPECT_TRUE(torch::equal(crop[0][0], torch::tensor({2, 3, 4, 5}, torch::kUInt8)));
  // Pure red as grey: BT.601 luma 0.299 * 255 = 76.2 -> 76.
  auto red = torch::zeros({3, 2, 2}, torch::kUInt8);
  red[0].fill_(255);
  EXPECT_EQ(fit_image(red, 2, 1).max().item<int>(), 76);
  EXPECT_TRUE(contains(error_of([] {
                         fit_image(torch::zeros({2, 4, 4}, torch::kUInt8), 4, 1);
                       }),
                       "[1 or 3, H, W]"));
}

TEST(ImageFolder, SkipsClutterWithAWarningAndRefusesWhatWouldLoseData) {
  TempDir dir;
  fs::create_directories(dir / "a");
  fs::create_directories(dir / ".cache");
  write_png(dir / "a" / "x.png", pattern(8, 8, 1));
  write_file_atomic(dir / "a" / "README.txt", "not an image");
  write_file_atomic(dir / "a" / ".DS_Store", "junk");
  write_file_atomic(dir / "notes.md", "top-level file");
  const auto f = read_image_folder(dir.path());
  EXPECT_EQ(f.data.size(), 1);
  EXPECT_EQ(f.class_names, (std::vector<std::string>{"a"}));
  ASSERT_EQ(f.warnings.size(), 4u);  // .cache, notes.md, .DS_Store, README.txt
  std::string all;
  for (const auto& w : f.warnings) all += w + "\n";
  EXPECT_TRUE(contains(all, "README.txt: skipped")) << all;
  EXPECT_TRUE(contains(all, "notes.md: skipped (not a class folder)")) << all;

  // A corrupt image is refused, naming it.
  write_file_atomic(dir / "a" / "bad.png", "\x89PNG\r\n\x1a\n truncated");
  std::string message = error_of([&] { read_image_folder(dir.path()); });
  EXPECT_TRUE(contains(message, "bad.png: not a readable PNG, JPEG or BMP image")) << message;
  fs::remove(dir / "a" / "bad.png");
  // An empty class folder is refused.
  fs::create_directories(dir / "b");
  message = error_of([&] { read_image_folder(dir.path()); });
  EXPECT_TRUE(contains(message, "class folder 'b' has no images")) << message;
  // No class folders at all.
  TempDir flat;
  write_png(flat / "x.png", pattern(8, 8, 1));
  EXPECT_FALSE(looks_like_image_folder(flat.path()));
  EXPECT_TRUE(contains(error_of([&] { read_image_folder(flat.path()); }), "no class folders"));
  EXPECT_TRUE(contains(error_of([&] { read_image_folder(flat / "none"); }), "no such directory"));
}

// CIFAR records with known content: record i has label labels[i] and pixel byte j = (i + j) % 251.
std::string cifar_records(const std::vector<std::vector<uint8_t>>& labels) {
  std::string out;
  for (size_t i = 0; i < labels.size(); ++i) {
    for (uint8_t l : labels[i]) out.push_back(static_cast<char>(l));
    for (int j = 0; j < 3072; ++j) out.push_back(static_cast<char>((i + j) % 251));
  }
  return out;
}

TEST(Cifar, Cifar10RecordsAndTheirPixelLayout) {
  TempDir root;
  const fs::path dir = root / "cifar-10-batches-bin";
  fs::create_directories(dir);
  for (int b = 1; b <= 5; ++b) {
    write_file_atomic(dir / fmt::format("data_batch_{}.bin", b),
                      cifar_records({{static_cast<uint8_t>(b)}, {9}}));
  }
  write_file_atomic(dir / "test_batch.bin", cifar_records({{3}, {0}, {7}}));
  std::string names;
  for (const char* n :
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}) {
    names += std::string(n) + "\n";
  }
  write_file_atomic(dir / "batches.meta.txt", names + "\n");
  EXPECT_EQ(find_cifar_dir(root.path()), dir);  // the folder above the extracted one works too
  const CifarData c = read_cifar(root.path());
  EXPECT_EQ(c.num_classes, 10);
  ASSERT_EQ(c.train.images.sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  EXPECT_TRUE(
      torch::equal(c.train.labels.slice(0, 0, 4), torch::tensor({1, 9, 2, 9}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(c.test.labels, torch::tensor({3, 0, 7}, torch::kInt64)));
  EXPECT_EQ(c.class_names[9], "truck");
  // Pixel byte j of record i: channel j / 1024, row (j % 1024) / 32, column j % 32.
  for (int j : {0, 1, 31, 32, 1023, 1024, 2047, 3071}) {
    const int ch = j / 1024, y = (j % 1024) / 32, x = j % 32;
    EXPECT_EQ(c.test.images[2][ch][y][x].item<int>(), (2 + j) % 251) << j;
  }
}

TEST(Cifar, Cifar100UsesTheFineLabel) {
  TempDir dir;
  write_file_atomic(dir / "train.bin", cifar_records({{4, 99}, {19, 0}}));
  write_file_atomic(dir / "test.bin", cifar_records({{1, 42}}));
  const CifarData c = read_cifar(dir.path());
  EXPECT_EQ(c.num_classes, 100);
  EXPECT_TRUE(torch::equal(c.train.labels, torch::tensor({99, 0}, torch::kInt64)));
  EXPECT_EQ(c.class_names.size(), 100u);  // no fine_label_names.txt: "0".."99"
  EXPECT_EQ(c.class_names[42], "42");
}

TEST(Cifar, BadFilesAreRefusedNamingThem) {
  TempDir dir;
  write_file_atomic(dir / "train.bin", cifar_records({{4, 99}}).substr(0, 3000));
  write_file_atomic(dir / "test.bin", cifar_records({{1, 42}}));
  EXPECT_TRUE(contains(error_of([&] { read_cifar(dir.path()); }),
                       "train.bin: 3000 bytes is not a whole number of 3074-byte CIFAR records"));
  write_file_atomic(dir / "train.bin", cifar_records({{4, 100}}));
  EXPECT_TRUE(contains(error_of([&] { read_cifar(dir.path()); }),
                       "record 0 has label 100, expected 0 to 99"));
  TempDir ten;
  write_file_atomic(ten / "data_batch_1.bin", cifar_records({{1}}));
  write_file_atomic(ten / "test_batch.bin", cifar_records({{1}}));
  EXPECT_TRUE(contains(error_of([&] { read_cifar(ten.path()); }), "training batch 2 is missing"));
  TempDir empty;
  EXPECT_TRUE(contains(error_of([&] { read_cifar(empty.path()); }), "no CIFAR binary files"));
}

TEST(LoadData, ImageFoldersAndCifarBehindTheSameSplit) {
  // Class folders without a test split: a seeded split, the folders' names as classes.
  TempDir folders;
  for (const char* name : {"circle", "square", "star"}) {
    fs::create_directories(folders / name);
    for (int i = 0; i < 5; ++i) {
      write_png(folders / name / fmt::format("{}.png", i), pattern(12 + i, 12, 1));
    }
  }
  DataOptions o;
  o.data = folders.path().string();
  o.val_fraction = 0.2;
  const DataSplit s = load_data(o);
  EXPECT_EQ(s.num_classes, 3);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"circle", "square", "star"}));
  EXPECT_EQ(s.train.size() + s.val.size(), 15);
  EXPECT_EQ(s.val.size(), 3);
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{12, 1, 12, 12}));
  EXPECT_TRUE(contains(s.source, "image folder")) << s.source;
  EXPECT_TRUE(contains(s.split, "seeded split")) << s.split;

  // train/ and test/ folders: the test folder is the held-out split, fitted to train's size.
  TempDir split;
  for (const char* part : {"train", "test"}) {
    for (const char* name : {"a", "b"}) {
      fs::create_directories(split / part / name);
      write_bmp(split / part / name / "x.bmp", pattern(part[1] == 'r' ? 10 : 20, 10, 3));
    }
  }
  o.data = split.path().string();
  const DataSplit t = load_data(o);
  EXPECT_EQ(t.train.size(), 2);
  EXPECT_EQ(t.val.size(), 2);
  EXPECT_EQ(t.val.images.sizes(), (std::vector<int64_t>{2, 3, 10, 10}));
  EXPECT_TRUE(contains(t.split, "the test files")) << t.split;

  // CIFAR-100: its test file is the held-out split, 100 classes.
  TempDir cifar;
  write_file_atomic(cifar / "train.bin", cifar_records({{0, 5}, {0, 6}}));
  write_file_atomic(cifar / "test.bin", cifar_records({{0, 7}}));
  o.data = cifar.path().string();
  const DataSplit c = load_data(o);
  EXPECT_EQ(c.num_classes, 100);
  EXPECT_EQ(c.train.size(), 2);
  EXPECT_EQ(c.val.size(), 1);
  EXPECT_EQ(c.train.images.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(contains(c.source, "CIFAR-100")) << c.source;
}

}  // namespace
}  // namespace numeral
