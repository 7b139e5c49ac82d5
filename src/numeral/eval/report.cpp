#include "numeral/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "numeral/common/error.h"

namespace numeral {
namespace {

void check_table(const ReportTable& table) {
  for (const auto& row : table.rows) {
    NUMERAL_CHECK(row.size() == table.columns.size(),
                  "report table '{}': a row has {} cells for {} columns", table.title, row.size(),
                  table.columns.size());
  }
}

// `text` broken at spaces into lines of at most `width` characters, each starting with `indent`.
std::string wrap(const std::string& text, size_t width, const std::string& indent) {
  std::string out, line = indent;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (line.size() > indent.size() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line = indent;
    }
    if (line.size() > indent.size()) line += " ";
    line += word;
    start = end + 1;
  }
  return out + line + "\n";
}

}  // namespace

ReportCell number_cell(double value, const std::string& format) {
  if (!std::isfinite(value)) return {nullptr, "-"};
  return {value, fmt::format(fmt::runtime(format), value)};
}

ReportCell percent_cell(double value, int decimals) {
  if (!std::isfinite(value)) return {nullptr, "-"};
  return {value, fmt::format("{:.{}f}%", 100 * value, decimals)};
}

ReportCell text_cell(const std::string& text) {
  return {text, text};
}

ReportCell empty_cell(const std::string& text) {
  return {nullptr, text};
}

ReportTable comparison_table(const std::string& title) {
  ReportTable table;
  table.title = title;
  table.columns = {"metric", "generated", "real", "ratio"};
  return table;
}

void add_comparison(ReportTable& table, const std::string& metric, ReportCell generated,
                    ReportCell real, bool ratio) {
  ReportCell quotient = empty_cell();
  if (ratio && generated.value.is_number() && real.value.is_number() &&
      real.value.get<double>() > 0) {
    quotient = number_cell(generated.value.get<double>() / real.value.get<double>(), "{:.2f}");
  }
  table.rows.push_back({text_cell(metric), std::move(generated), std::move(real), quotient});
}

std::string render_text(const Report& report) {
  std::string out = report.title + "\n";
  for (const auto& [key, value] : report.facts) out += fmt::format("  {}: {}\n", key, value);
  for (const auto& table : report.tables) {
    check_table(table);
    std::vector<size_t> width(table.columns.size());
    for (size_t c = 0; c < table.columns.size(); ++c) {
      width[c] = table.columns[c].size();
      for (const auto& row : table.rows) width[c] = std::max(width[c], row[c].text.size());
    }
    out += "\n" + table.title + "\n";
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text = " ";
      for (size_t c = 0; c < cells.size(); ++c) {
        // The first column (names) to the left, the numbers to the right.
        text += c == 0 ? fmt::format(" {:<{}}", cells[c], width[c])
                       : fmt::format("  {:>{}}", cells[c], width[c]);
      }
      text.erase(text.find_last_not_of(' ') + 1);  // an empty last cell leaves no trailing blanks
      out += text + "\n";
    };
    line(table.columns);
    for (const auto& row : table.rows) {
      std::vector<std::string> cells;
      for (const auto& cell : row) cells.push_back(cell.text);
      line(cells);
    }
    if (!table.note.empty()) out += wrap(table.note, 100, "  ");
  }
  return out;
}

std::string render_markdown(const Report& report) {
  std::string out = "# " + report.title + "\n\n";
  for (const auto& [key, value] : report.facts) out += fmt::format("- {}: {}\n", key, value);
  for (const auto& table : report.tables) {
    check_table(table);
    out += "\n## " + table.title + "\n\n|";
    for (const auto& column : table.columns) out += " " + column + " |";
    out += "\n|";
    for (size_t c = 0; c < table.columns.size(); ++c) out += c == 0 ? " --- |" : " ---: |";
    out += "\n";
    for (const auto& row : table.rows) {
      out += "|";
      for (const auto& cell : row) out += " " + cell.text + " |";
      out += "\n";
    }
    if (!table.note.empty()) out += "\n" + table.note + "\n";
  }
  for (const auto& [caption, file] : report.images) {
    out += fmt::format("\n![{}]({})\n", caption, file);
  }
  return out;
}

nlohmann::json render_json(const Report& report) {
  nlohmann::json j = {{"title", report.title}};
  j["facts"] = nlohmann::json::object();
  for (const auto& [key, value] : report.facts) j["facts"][key] = value;
  j["tables"] = nlohmann::json::array();
  for (const auto& table : report.tables) {
    check_table(table);
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : table.rows) {
      nlohmann::json object = nlohmann::json::object();
      for (size_t c = 0; c < row.size(); ++c) object[table.columns[c]] = row[c].value;
      rows.push_back(object);
    }
    j["tables"].push_back({{"title", table.title}, {"rows", rows}, {"note", table.note}});
  }
  j["images"] = nlohmann::json::object();
  for (const auto& [caption, file] : report.images) j["images"][caption] = file;
  j["data"] = report.data;
  return j;
}

}  // namespace numeral
