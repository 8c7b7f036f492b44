#include "reports/methods_page.hpp"

#include <sstream>

#include "reports/render_md_csv.hpp"

namespace attnbench {

namespace {

// `name` (default) for every parameter; choices listed as (a|b: default).
std::string parameters(const method_info& m) {
  if (m.params.empty()) return "none";
  std::string out;
  for (const auto& p : m.params) {
    if (!out.empty()) out += ", ";
    out += "`" + p.name + "`";
    std::string choices;
    for (const auto& c : p.choices) choices += (choices.empty() ? "" : "|") + c;
    if (!choices.empty())
      out += " (" + choices + ": " + (p.default_text.empty() ? "unset" : p.default_text) + ")";
    else if (!p.default_text.empty())
      out += " (" + p.default_text + ")";
  }
  return out;
}

}  // namespace

std::string methods_markdown(const std::vector<const method_info*>& methods) {
  std::ostringstream md;
  md << "# Methods\n\n"
     << "<!-- Generated from the method registry: do not edit. Regenerate with\n"
     << "     build/attnbench list methods --format md > docs/methods.md -->\n\n"
     << "Every registered method with its paper, parameters (defaults), selection rule and what "
        "this\nimplementation simplifies. `attnbench list methods` also gives each parameter's "
        "type, range\nand meaning.\n\n"
     << "| name | paper | parameters (default) | rule | simplified |\n"
     << "| --- | --- | --- | --- | --- |\n";
  for (const method_info* m : methods)
    md << "| `" << m->name << "` | " << escape_cell(m->paper.empty() ? "exact attention" : m->paper)
       << " | " << escape_cell(parameters(*m)) << " | " << escape_cell(m->summary) << " | "
       << escape_cell(m->simplified) << " |\n";
  return md.str();
}

}  // namespace attnbench
