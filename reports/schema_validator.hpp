/// A JSON Schema validator for the keyword subset that reports/report.schema.json uses, and
/// that schema itself, embedded in the binary at build time so installed tools need no source
/// tree. Supported keywords: type (a name or a list of names), required, properties,
/// additionalProperties (bool or schema), items (one schema), enum, minimum, minLength, pattern;
/// annotations ($schema, $id, title, description) are ignored. Any other keyword is rejected,
/// so a schema never silently checks less than it says.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnbench {

/// Every violation of `schema` by `doc`, each "<JSON pointer>: <what is wrong>" (the root is
/// written "(root)"). Empty when `doc` is valid. Throws bad_input for a keyword outside the subset.
std::vector<std::string> validate_against_schema(const nlohmann::json& schema,
                                                 const nlohmann::json& doc);

/// The text of reports/report.schema.json as it was at build time.
std::string_view report_schema_text();

/// report_schema_text() parsed.
nlohmann::json load_report_schema();

/// validate_against_schema(load_report_schema(), doc).
std::vector<std::string> validate_report_json(const nlohmann::json& doc);

}  // namespace attnbench
