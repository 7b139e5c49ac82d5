#pragma once
// One report shape for evaluation commands: a title, facts (what was evaluated, against what),
// titled tables of rows, and the pictures that go with them. Rendered once each for the terminal,
// Markdown and JSON, so a new metric is one more row or column, not an edit in three renderers.
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace numeral {

// A table cell: its value for JSON (a number, a string or null) and its text for people.
struct ReportCell {
  nlohmann::json value;
  std::string text;
};

// A number shown with fmt `format` (e.g. "{:.2f}"); NaN shows as "-" and is null in JSON.
ReportCell number_cell(double value, const std::string& format);
// A percentage: value 0.9876 shows as "98.76%" (with `decimals`) and is 0.9876 in JSON.
ReportCell percent_cell(double value, int decimals = 2);
// Text, the same in every rendering.
ReportCell text_cell(const std::string& text);
// No value (null in JSON), shown as `text`: "never", "skipped", or nothing.
ReportCell empty_cell(const std::string& text = "");

// A titled table; every row has one cell per column.
struct ReportTable {
  std::string title;
  std::vector<std::string> columns;
  std::vector<std::vector<ReportCell>> rows;
  std::string note;  // a sentence under the table; may be empty
};

// A table comparing generated digits with real ones, one metric a row: the columns metric,
// generated, real and ratio (generated / real, where it means something).
ReportTable comparison_table(const std::string& title);
// Appends a metric to a comparison_table; with `ratio`, generated / real to two decimals when both
// cells hold numbers.
void add_comparison(ReportTable& table, const std::string& metric, ReportCell generated,
                    ReportCell real, bool ratio = false);

// What an evaluation command reports, built once from typed results and rendered three ways.
struct Report {
  std::string title;
  std::vector<std::pair<std::string, std::string>> facts;  // "checkpoint" -> "runs/x/..."
  std::vector<ReportTable> tables;
  std::vector<std::pair<std::string, std::string>> images;  // caption -> file beside the report
  nlohmann::json data = nlohmann::json::object();           // raw numbers for JSON readers
};

// Aligned columns for a terminal; notes wrapped at 100 columns.
std::string render_text(const Report& report);
// GitHub Markdown: facts as a list, tables as pipe tables, images linked.
std::string render_markdown(const Report& report);
// {"title", "facts": {...}, "tables": [{"title", "rows": [{column: value}], "note"}], "images",
// "data"}.
nlohmann::json render_json(const Report& report);

}  // namespace numeral
