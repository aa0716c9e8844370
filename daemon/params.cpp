#include "daemon/params.hpp"

#include "util/error.hpp"

namespace server {

namespace {

[[noreturn]] void bad_field(const char* field, const char* expected)
{
  throw util::Error(util::Errc::invalid_params,
                    std::string("invalid params: field ") + field + " must be " + expected);
}

} // namespace

std::string required_string(const nlohmann::json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    bad_field(field, "a non-empty string");
  }
  return it->get<std::string>();
}

std::string optional_string(const nlohmann::json& params, const char* field, const std::string& fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_string()) {
    bad_field(field, "a string");
  }
  return it->get<std::string>();
}

bool optional_bool(const nlohmann::json& params, const char* field, bool fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_boolean()) {
    bad_field(field, "a boolean");
  }
  return it->get<bool>();
}

std::vector<std::string> required_string_array(const nlohmann::json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || !it->is_array() || it->empty()) {
    bad_field(field, "a non-empty array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : *it) {
    if (!item.is_string()) {
      bad_field(field, "a non-empty array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::vector<std::string> optional_string_array(const nlohmann::json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return {};
  }
  if (!it->is_array()) {
    bad_field(field, "an array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : *it) {
    if (!item.is_string()) {
      bad_field(field, "an array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

int64_t optional_int(const nlohmann::json& params, const char* field, int64_t fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_number_integer()) {
    bad_field(field, "an integer");
  }
  return it->get<int64_t>();
}

} // namespace server
