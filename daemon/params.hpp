#pragma once
// The parsing primitives of the methods' typed params (each method's params
// struct, in its methods_*.cpp, parses itself with these once, before its
// handler runs). Each throws util::Error(invalid_params) naming the field:
// "invalid params: field NAME must be ...". Pure: any thread.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace server {

std::string required_string(const nlohmann::json& params, const char* field);
std::string optional_string(const nlohmann::json& params, const char* field, const std::string& fallback = {});
bool optional_bool(const nlohmann::json& params, const char* field, bool fallback = false);
int64_t optional_int(const nlohmann::json& params, const char* field, int64_t fallback = 0);
std::vector<std::string> required_string_array(const nlohmann::json& params, const char* field);
std::vector<std::string> optional_string_array(const nlohmann::json& params, const char* field);

} // namespace server
