// `numeral data get NAME` and `numeral data list`: put datasets on the machine and show them.
#include <fmt/core.h>

#include <string>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/data/make.h"
#include "numeral/data/sources.h"
#include "numeral/generate/pictures.h"
#include "numeral/io/image.h"

namespace {

using numeral::with_commas;

struct DataCommandOptions {
  std::string name;                       // dataset to get: mnist or fashion-mnist
  std::string root;                       // data directory; "" = $NUMERAL_DATA or ./data
  std::string data = "mnist";             // grid: which dataset
  std::string split = "train";            // grid: train or val
  int64_t per_class = 10;                 // grid: columns
  int scale = 3;                          // grid: nearest-neighbour upscaling
  std::string out = "out/real-grid.png";  // grid: output PNG
  std::string made;                       // make: which dataset (colored-mnist)
  std::string made_out;                   // make: output directory ("" = <root>/<name>)
  uint64_t seed = 0;                      // make: colours
  bool overwrite = false;                 // make: replace an earlier one
};

std::filesystem::path resolve_root(const std::string& root) {
  numeral::DataOptions options;
  options.root = root;
  return numeral::data_root(options);
}

void run_get(const DataCommandOptions& options) {
  const numeral::FetchReport report =
      numeral::fetch_dataset(options.name, resolve_root(options.root));
  const char* noun = report.name == "mnist" ? "digits" : "images";
  if (report.already_present) {
    fmt::print("{}: already in {} (nothing to do)\n", report.name, report.dir.string());
  } else {
    fmt::print("{}: fetched into {}\n", report.name, report.dir.string());
  }
  fmt::print("  source: {}\n", report.source);
  fmt::print("  {}: {} train, {}\n", noun, with_commas(report.train),
             report.test > 0 ? with_commas(report.test) + " test" : std::string("no test split"));
  if (!report.note.empty()) fmt::print("  note:   {}\n", report.note);
}

void run_list(const DataCommandOptions& options) {
  const std::filesystem::path root = resolve_root(options.root);
  const auto datasets = numeral::find_datasets(root);
  if (datasets.empty()) {
    fmt::print("no datasets under {}: run `numeral data get mnist`\n", root.string());
    return;
  }
  fmt::print("{:<14} {:>8} {:>8}  {:<34} {}\n", "dataset", "train", "test", "dir", "source");
  for (const auto& d : datasets) {
    fmt::print("{:<14} {:>8} {:>8}  {:<34} {}\n", d.name, with_commas(d.train),
               d.test > 0 ? with_commas(d.test) : std::string("-"), d.dir.string(), d.source);
  }
}

void run_grid(const DataCommandOptions& options) {
  numeral::DataOptions data_options;
  data_options.data = options.data;
  data_options.root = options.root;
  const numeral::DataSplit data = numeral::load_data(data_options);
  NUMERAL_CHECK(options.split == "train" || options.split == "val",
                "--split {}: expected train or val", options.split);
  const auto& set = options.split == "train" ? data.train : data.val;
  const auto picked = numeral::first_per_class(set, options.per_class, data.num_classes);
  numeral::GridLabels labels;
  labels.rows = data.class_names;
  labels.title = fmt::format("{} ({}): the first {} {} images of each class", data.name,
                             options.split, options.per_class, options.split);
  numeral::write_png(
      options.out, numeral::labelled_grid(picked.images, options.per_class, labels, options.scale));
  fmt::print("{}: {} {} images of {} in {} ({} train, {} held out; {})\n", options.out,
             picked.size(), options.split, data.name, data.dir.string(),
             with_commas(data.train.size()), with_commas(data.val.size()), data.source);
}

// Colored MNIST from the source's training and held-out digits, as class folders of PNGs:
// OUT/train/<digit>/<n>.png and OUT/test/<digit>/<n>.png (the held-out digits stay held out).
void run_make(const DataCommandOptions& options) {
  NUMERAL_CHECK(options.made == "colored-mnist", "data make {}: expected colored-mnist",
                options.made);
  numeral::DataOptions data_options;
  data_options.data = options.data;
  data_options.root = options.root;
  const numeral::DataSplit data = numeral::load_data(data_options);
  const std::filesystem::path out = options.made_out.empty()
                                        ? numeral::data_root(data_options) / options.made
                                        : std::filesystem::path(options.made_out);
  numeral::PendingDir dir(out, options.overwrite);
  int64_t written = 0;
  for (const auto& [part, set] : {std::pair{"train", &data.train}, std::pair{"test", &data.val}}) {
    // One seed stream per part, so the train images do not depend on the held-out count.
    const numeral::Dataset colored =
        numeral::colored_digits(*set, options.seed * 2 + (std::string(part) == "test"));
    for (int64_t i = 0; i < colored.size(); ++i) {
      const int64_t label = colored.labels[i].item<int64_t>();
      dir.write(fmt::format("{}/{}/{:05}.png", part, data.class_names.at(label), i),
                numeral::encode_png(numeral::image_from_tensor(colored.images[i])));
      ++written;
    }
  }
  dir.commit();
  fmt::print(
      "{}: {} colored digits from {} ({} train, {} test; 32x32 RGB, seed {}); train on it "
      "with --data {}\n",
      out.string(), with_commas(written), data.name, with_commas(data.train.size()),
      with_commas(data.val.size()), options.seed,
      options.made_out.empty() ? options.made : out.string());
}

const bool kRegistered = numeral::cli::register_command(/*order=*/20, [](CLI::App& app) {
  static DataCommandOptions options;
  auto* data = app.add_subcommand(
      "data", "Get datasets (MNIST, Fashion-MNIST), list them, show them, make new ones");
  data->require_subcommand(1);

  auto* get = data->add_subcommand(
      "get", "Fetch a dataset into the data directory (idempotent): mnist or fashion-mnist");
  get->add_option("name", options.name, "mnist or fashion-mnist")->required();
  get->add_option("--root", options.root, "data directory (default: $NUMERAL_DATA or ./data)");
  get->callback([] { run_get(options); });

  auto* list = data->add_subcommand("list", "List the datasets under the data directory");
  list->add_option("--root", options.root, "data directory (default: $NUMERAL_DATA or ./data)");
  list->callback([] { run_list(options); });

  auto* grid = data->add_subcommand("grid", "Write a PNG grid of real images, one row per class");
  grid->add_option("--data", options.data, "mnist, fashion-mnist or a directory of IDX files")
      ->capture_default_str();
  grid->add_option("--root", options.root, "data directory (default: $NUMERAL_DATA or ./data)");
  grid->add_option("--split", options.split, "train or val")->capture_default_str();
  grid->add_option("--per-class", options.per_class, "images per class (columns)")
      ->capture_default_str()
      ->check(numeral::cli::at_least(1));
  grid->add_option("--scale", options.scale, "nearest-neighbour upscaling")
      ->capture_default_str()
      ->check(numeral::cli::between(1, 16));
  grid->add_option("--out,-o", options.out, "output PNG")->capture_default_str();
  grid->callback([] { run_grid(options); });

  auto* make = data->add_subcommand(
      "make", "Make a dataset from another, reproducibly: colored-mnist (32x32 RGB digits)");
  make->add_option("name", options.made, "colored-mnist")->required();
  make->add_option("--data", options.data, "the grey 28x28 digits to colour")
      ->capture_default_str();
  make->add_option("--root", options.root, "data directory (default: $NUMERAL_DATA or ./data)");
  make->add_option("--out,-o", options.made_out,
                   "output directory (default: <data directory>/<name>, then --data <name>)");
  make->add_option("--seed", options.seed, "seed of the colours")->capture_default_str();
  make->add_flag("--overwrite", options.overwrite, "replace an earlier one at --out");
  make->callback([] { run_make(options); });
});

}  // namespace
