#pragma once
// A rotation hook's stderr as it may leave the runner (DESIGN.md section 8):
// no form of the old or the new value in it. Pure; any thread.

#include <string>
#include <string_view>
#include <vector>

namespace rotation {

// Replaces every form util::encoded_forms knows of every value in `captured`
// by k_redaction_mark, and only then cuts the text to k_max_stderr (with
// k_truncation_mark, on a UTF-8 character boundary) when it is longer or
// `more_came` (stderr went on past what was captured). A cut never leaves
// the beginning of a form at the end of the text: a value too long to be
// whole in `captured` cannot be redacted, so what is there of it goes.
// Wipes `captured`.
std::string redact_stderr(std::string& captured, bool more_came, const std::vector<std::string_view>& values);

// The length of the longest end of `text` that is a beginning of `form`.
std::size_t partial_form_at_end(std::string_view text, std::string_view form);

} // namespace rotation
