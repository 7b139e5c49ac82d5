#pragma once
// Files on disk: atomic writes (temporary file, then rename) and whole-file reads.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace numeral {

namespace fs = std::filesystem;

// Writes `path` atomically: `write` fills a temporary file beside it, which is flushed and renamed
// over `path` only if `write` returns normally. Creates missing parent directories. On any error
// the temporary file is removed and `path` is untouched; throws numeral::Error naming the path.
void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write);

// Same as write_file_atomic for an in-memory byte buffer.
void write_file_atomic(const fs::path& path, const std::string& bytes);

// Reads a whole file; throws numeral::Error naming the path if it is missing or unreadable.
std::string read_file(const fs::path& path);

// Throws numeral::Error unless `dir` exists (or can be created) and a file can be written in it.
void ensure_writable_dir(const fs::path& dir);

}  // namespace numeral
