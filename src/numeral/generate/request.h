#pragma once
// What the generation commands check before spending minutes on sampling: that every output can
// be written and that a count fits one request (the classes are the Pipeline's to check).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "numeral/inference/request.h"  // kMaxRequestImages

namespace numeral {

// Throws numeral::Error (naming `flag` and the path) unless a file can be written at `path`: absent
// or a regular file (check_output_target), its parent directory exists or can be created, and is
// writable.
void check_output_path(const std::filesystem::path& path, const std::string& flag);

// per_class x rows, the size of a request, checked against kMaxRequestImages before anything is
// allocated; throws numeral::Error naming `flag` and the largest value allowed.
int64_t request_size(int64_t per_class, int64_t rows, const std::string& flag);

// A guidance weight for labels and messages: "0", "0.5", "2".
std::string format_weight(double w);

// A request's guidance for headers and reports: "w=0.5", "w=0.5 at t 10..70" with a w_interval,
// "w=0.5, w_guide=2" with autoguidance.
std::string format_guidance(const GenerateRequest& request);

// What a request adds to classifier-free guidance's w, for report lines whose w is given apart:
// ", guided only at t 10..70" with a w_interval and ", autoguided by GUIDE at w_guide 2" when
// w_guide is not 0; "" for neither.
std::string guidance_additions(const std::vector<int64_t>& w_interval, double w_guide,
                               const std::string& guide);

// ", network in bfloat16" for a precision other than float32 (the default); "" for float32.
std::string precision_addition(Precision precision);

}  // namespace numeral
