#include "reports/suites_page.hpp"

#include <sstream>

#include "reports/render_md_csv.hpp"

namespace attnbench {

std::string suites_markdown(const std::vector<const suite*>& suites) {
  std::ostringstream md;
  md << "# Suites reference\n\n"
     << "<!-- Generated from the suite registry: do not edit. Regenerate with\n"
     << "     build/attnbench list suites --format md > docs/suites-reference.md -->\n\n"
     << "Every registered suite with its axes (set any with `--axis SUITE.NAME=values`), its\n"
     << "`--param` keys and its metrics. [suites.md](suites.md) explains what each suite measures.\n";
  for (const suite* s : suites) {
    md << "\n## " << s->name() << "\n\n" << s->description() << "\n\n"
       << "| axis | type | default | quick preset | notes |\n| --- | --- | --- | --- | --- |\n";
    for (const auto& a : s->axes())
      md << "| `" << a.name << "` | " << name_of(a.type) << " | " << escape_cell(values_text(a.defaults, ", "))
         << " | " << escape_cell(values_text(a.quick, ", ")) << " | " << escape_cell(a.doc) << " |\n";
    std::string params;
    for (const auto& p : s->param_names()) {
      if (!params.empty()) params += ", ";
      params.append("`").append(s->name()).append(".").append(p).append("`");
    }
    md << "\n`--param` keys: " << (params.empty() ? "none" : params) << "\n\n"
       << "| metric | unit | better | meaning |\n| --- | --- | --- | --- |\n";
    for (const auto& [name, info] : s->metrics())
      md << "| `" << name << "` | " << escape_cell(info.unit) << " | "
         << (info.higher_is_better ? "higher" : "lower") << " | " << escape_cell(info.doc)
         << " |\n";
  }
  return md.str();
}

}  // namespace attnbench
