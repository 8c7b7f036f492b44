#include "reports/schema_validator.hpp"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "harness/error.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

// RFC 6901: '~' and '/' inside a key are escaped as ~0 and ~1.
std::string pointer_append(const std::string& ptr, const std::string& key) {
  std::string out = ptr + '/';
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool has_type(const json& doc, const std::string& type, const std::string& schema_ptr) {
  if (type == "null") return doc.is_null();
  if (type == "boolean") return doc.is_boolean();
  if (type == "object") return doc.is_object();
  if (type == "array") return doc.is_array();
  if (type == "string") return doc.is_string();
  if (type == "number") return doc.is_number();
  if (type == "integer") {
    // JSON Schema counts 2.0 as an integer: the mathematical value decides, not the spelling.
    if (doc.is_number_integer()) return true;
    if (!doc.is_number_float()) return false;
    const double v = doc.get<double>();
    return std::isfinite(v) && std::floor(v) == v;
  }
  ATTNBENCH_BAD_INPUT("schema " << schema_ptr << ": unknown type '" << type << "'");
}

std::string short_text(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

/// Walks a document and its schema together, collecting every violation rather than stopping
/// at the first, so one run over a broken report lists all that is wrong with it.
class validator {
 public:
  std::vector<std::string> take_errors() { return std::move(m_errors); }

  // `ptr` locates the value in the document, `schema_ptr` the schema in the schema document.
  void check(const json& schema, const json& doc, const std::string& ptr,
             const std::string& schema_ptr) {
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) fail(ptr, "no value is allowed here");
      return;
    }
    if (!schema.is_object())
      ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": must be an object or a boolean");
    for (const auto& [keyword, value] : schema.items()) check_keyword_known(keyword, schema_ptr);

    if (auto it = schema.find("type"); it != schema.end()) {
      if (!type_matches(*it, doc, schema_ptr)) {
        fail(ptr, "expected " + (it->is_string() ? it->get<std::string>() : it->dump()) + ", got " +
                      doc.type_name());
        return;  // the remaining keywords would only repeat the mismatch
      }
    }
    if (auto it = schema.find("enum"); it != schema.end()) {
      if (!it->is_array())
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": enum must be an array");
      if (std::find(it->begin(), it->end(), doc) == it->end())
        fail(ptr, "value " + short_text(doc) + " is not one of " + it->dump());
    }
    // As in JSON Schema, each remaining keyword applies only to values of its own kind:
    // `required` says nothing about a string, `minimum` nothing about an object.
    if (doc.is_object()) check_object(schema, doc, ptr, schema_ptr);
    if (doc.is_array()) {
      if (auto it = schema.find("items"); it != schema.end()) {
        for (std::size_t i = 0; i < doc.size(); ++i)
          check(*it, doc[i], ptr + '/' + std::to_string(i), schema_ptr + "/items");
      }
    }
    if (doc.is_number()) {
      if (auto it = schema.find("minimum"); it != schema.end()) {
        if (!it->is_number())
          ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": minimum must be a number");
        if (doc.get<double>() < it->get<double>())
          fail(ptr, "value " + doc.dump() + " is less than the minimum " + it->dump());
      }
    }
    if (doc.is_string()) check_string(schema, doc.get<std::string>(), ptr, schema_ptr);
  }

 private:
  static std::string at(const std::string& ptr) { return ptr.empty() ? "(root)" : ptr; }

  void fail(const std::string& ptr, const std::string& message) {
    m_errors.push_back(at(ptr) + ": " + message);
  }

  // Unknown keywords are refused: a typo such as "requried" would otherwise disable a check.
  static void check_keyword_known(const std::string& keyword, const std::string& schema_ptr) {
    static const std::set<std::string> known{
        "type",    "required",   "properties", "additionalProperties",
        "items",   "enum",       "minimum",    "minLength",
        "pattern", "$schema",    "$id",        "$comment",
        "title",   "description"};
    if (known.count(keyword) == 0)
      ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": unsupported keyword '" << keyword
                                    << "'");
  }

  static bool type_matches(const json& type, const json& doc, const std::string& schema_ptr) {
    if (type.is_string()) return has_type(doc, type.get<std::string>(), schema_ptr);
    if (!type.is_array())
      ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": type must be a string or an array");
    for (const json& t : type) {
      if (!t.is_string())
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": type names must be strings");
      if (has_type(doc, t.get<std::string>(), schema_ptr)) return true;
    }
    return false;
  }

  void check_object(const json& schema, const json& doc, const std::string& ptr,
                    const std::string& schema_ptr) {
    if (auto it = schema.find("required"); it != schema.end()) {
      if (!it->is_array())
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": required must be an array");
      for (const json& name : *it) {
        if (!name.is_string())
          ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": required names must be strings");
        if (!doc.contains(name.get<std::string>()))
          fail(ptr, "missing required property '" + name.get<std::string>() + "'");
      }
    }
    const auto props = schema.find("properties");
    if (props != schema.end() && !props->is_object())
      ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": properties must be an object");
    // Keys not named in `properties` fall to additionalProperties: false forbids them, a
    // schema checks them, and without the keyword anything goes.
    const auto additional = schema.find("additionalProperties");
    for (const auto& [key, value] : doc.items()) {
      const std::string child = pointer_append(ptr, key);
      if (props != schema.end() && props->contains(key)) {
        check(props->at(key), value, child, pointer_append(schema_ptr + "/properties", key));
      } else if (additional != schema.end()) {
        if (additional->is_boolean() && !additional->get<bool>())
          fail(child, "property '" + key + "' is not allowed here");
        else
          check(*additional, value, child, schema_ptr + "/additionalProperties");
      }
    }
  }

  void check_string(const json& schema, const std::string& s, const std::string& ptr,
                    const std::string& schema_ptr) {
    if (auto it = schema.find("minLength"); it != schema.end()) {
      if (!it->is_number_unsigned())
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr)
                                      << ": minLength must be a non-negative integer");
      if (code_points(s) < it->get<std::size_t>())
        fail(ptr, "string is shorter than " + it->dump() + " characters");
    }
    if (auto it = schema.find("pattern"); it != schema.end()) {
      if (!it->is_string())
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": pattern must be a string");
      std::regex re;
      try {
        re = std::regex(it->get<std::string>(), std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        ATTNBENCH_BAD_INPUT("schema " << at(schema_ptr) << ": bad pattern " << it->dump() << ": "
                                      << e.what());
      }
      // Schema patterns are unanchored: they must match somewhere in the string.
      if (!std::regex_search(s, re))
        fail(ptr, "value " + short_text(json(s)) + " does not match the pattern " + it->dump());
    }
  }

  std::vector<std::string> m_errors;
};

}  // namespace

std::vector<std::string> validate_against_schema(const nlohmann::json& schema,
                                                 const nlohmann::json& doc) {
  validator v;
  v.check(schema, doc, "", "");
  return v.take_errors();
}

nlohmann::json load_report_schema() {
  // Parsed once: the text is fixed at build time.
  static const json schema = json::parse(report_schema_text());
  return schema;
}

std::vector<std::string> validate_report_json(const nlohmann::json& doc) {
  static const json schema = load_report_schema();
  return validate_against_schema(schema, doc);
}

}  // namespace attnbench
