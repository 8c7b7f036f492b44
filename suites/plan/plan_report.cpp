#include "suites/plan/plan_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "harness/error.hpp"
#include "reports/render_md_csv.hpp"

namespace attnbench::plan {

namespace {

std::string tokens_text(std::int64_t n) {
  if (n >= (1 << 20) && n % (1 << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n / 1024) + "K";
  return std::to_string(n);
}

std::string bytes_text(double b) {
  if (b >= k_gib) return format_real("%.2f", b / k_gib) + " GiB";
  if (b >= 1024.0 * 1024.0) return format_real("%.1f", b / (1024.0 * 1024.0)) + " MiB";
  return format_real("%.1f", b / 1024.0) + " KiB";
}

std::string ms_text(double s) {
  const double ms = s * 1e3;
  return ms >= 100  ? format_real("%.0f", ms)
         : ms >= 10 ? format_real("%.1f", ms)
                    : format_real("%.2f", ms);
}

// A plain text table, columns padded to their widest cell, numbers right-aligned.
std::string text_table(const std::vector<std::string>& header,
                       const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::string pad(width[i] - cells[i].size(), ' ');
      os << (i == 0 ? cells[i] + pad : "  " + pad + cells[i]);
    }
    os << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return os.str();
}

// Cells of a (context, batch) grid and of a frontier row share these axes.
nlohmann::json plan_axes(const plan_inputs& in) {
  return {{"model", in.model.name},
          {"gpu", in.gpu.name},
          {"tp", in.tp},
          {"dtype", in.dtype},
          {"kv_dtype", in.kv_dtype},
          {"budget", in.budget.text},
          {"output_tokens", in.output_tokens}};
}

record base_record(const plan_inputs& in, const method_instance& method) {
  record rec;
  rec.suite = "plan";
  rec.method = method.info->name;
  rec.method_spec = method.canonical;
  for (const auto& [k, v] : method.params.canonical()) rec.params[k] = v;
  rec.backend = "model";
  rec.mode = "query_aware";
  rec.axes = plan_axes(in);
  return rec;
}

std::string case_name(const nlohmann::json& axes) {
  std::string out = "plan(";
  bool first = true;
  for (const auto& [k, v] : axes.items()) {
    out += (first ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    first = false;
  }
  return out + ")";
}

// The largest batch in [1, memory_limit] whose TPOT meets the SLO (TPOT grows with batch).
std::int64_t slo_batch(const speed_model& speed, std::int64_t memory_limit, std::int64_t context,
                       double slo_s) {
  if (memory_limit < 1 || speed.decode(1, context).total_s > slo_s) return 0;
  std::int64_t lo = 1, hi = memory_limit;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (speed.decode(static_cast<double>(mid), context).total_s <= slo_s)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

constexpr std::int64_t k_max_context_searched = std::int64_t{1} << 24;

// The largest context (a multiple of 1024, up to 16M) whose sequences still fit `batch` at a
// time; 0 when not even 1024 tokens do.
std::int64_t max_context(const memory_model& memory, std::int64_t batch) {
  auto fits = [&](std::int64_t c) { return memory.max_batch(c) >= batch; };
  if (!fits(1024)) return 0;
  std::int64_t lo = 1, hi = k_max_context_searched / 1024;  // in units of 1024 tokens
  if (fits(hi * 1024)) return hi * 1024;
  while (hi - lo > 1) {
    const std::int64_t mid = (lo + hi) / 2;
    (fits(mid * 1024) ? lo : hi) = mid;
  }
  return lo * 1024;
}

}  // namespace

std::vector<std::int64_t> default_contexts() {
  std::vector<std::int64_t> out;
  for (std::int64_t c = 4096; c <= (std::int64_t{1} << 20); c *= 2) out.push_back(c);
  return out;
}

std::vector<std::int64_t> default_batches() {
  std::vector<std::int64_t> out;
  for (std::int64_t b = 1; b <= 1024; b *= 2) out.push_back(b);
  return out;
}

plan_result run_plan(const plan_request& request, const device_curves& curves) {
  plan_result result;
  report& doc = result.doc;
  doc.metrics = {
      {"kv_bytes_per_seq", {"bytes", false, "KV bytes one sequence holds per GPU (all layers)"}},
      {"kv_ratio", {"x", false, "the method's KV bytes over dense's at the same dtype"}},
      {"max_batch", {"sequences", true, "largest batch whose KV fits the engine's pool"}},
      {"slo_batch", {"sequences", true, "largest batch meeting --slo-tpot-ms (and memory)"}},
      {"feasible", {"bool", true, "1 when the batch fits the pool"}},
      {"tpot_s", {"s", false, "modelled time per output token at the batch"}},
      {"ttft_s", {"s", false, "modelled time to first token of one request (prefill)"}},
      {"tokens_per_s_per_gpu", {"tokens/s", true, "batch / TPOT / tensor-parallel size"}},
      {"max_context", {"tokens", true, "largest context (a multiple of 1024) that fits the batch"}},
      {"efficiency_length",
       {"tokens", false, "context from which the method's decode attention beats dense's"}},
      {"weights_bytes", {"bytes", false, "weights per GPU"}},
      {"kv_pool_bytes", {"bytes", true, "what the engine's budget leaves for the KV pool"}},
  };
  std::ostringstream out;
  const plan_inputs& base = request.base;
  out << base.model.display_name << " on " << base.gpu.display_name << ": tp " << base.tp << ", "
      << base.dtype << " weights, " << base.kv_dtype << " KV, budget " << base.budget.text;
  if (base.output_tokens > 0) out << ", " << base.output_tokens << " output tokens";
  out << "\nspeed: " << curves.source() << "\n";
  if (base.tp > 1 && !(base.gpu.interconnect_bytes_per_s > 0))
    out << "note: " << base.gpu.display_name
        << " has no interconnect bandwidth: tensor-parallel communication is left out\n";

  for (const method_instance& method : request.methods) {
    plan_inputs in = base;
    in.method = method;
    const memory_model memory(in);
    const speed_model speed(memory, curves);
    out << "\n== " << method.canonical << "\n";
    out << "per GPU: weights " << bytes_text(memory.weight_bytes()) << ", activations "
        << bytes_text(memory.activation_bytes()) << ", runtime "
        << bytes_text(memory.runtime_bytes()) << ", KV pool "
        << bytes_text(std::max(0.0, memory.kv_pool_bytes())) << " of "
        << bytes_text(memory.total_bytes()) << "; KV heads per GPU " << memory.kv_heads_per_rank()
        << (memory.kv_replicated() ? " (replicated across the TP ranks)" : "") << ", page "
        << memory.page_tokens() << " tokens\n";

    std::vector<std::vector<std::string>> rows;
    bool beyond_model = false, simulated = false;
    for (std::int64_t context : request.contexts) {
      const sequence_cost seq = memory.sequence(context);
      simulated = simulated || seq.simulated;
      const double dense = memory.dense_kv_bytes(context + in.output_tokens);
      const std::int64_t limit = memory.max_batch(context);
      std::string binding = memory.kv_pool_bytes() <= 0 ? "weights" : "kv";
      std::int64_t chosen = limit;
      std::optional<std::int64_t> slo;
      std::vector<std::string> probe_notes;
      if (request.slo_tpot_s) {
        slo = slo_batch(speed, limit, context, *request.slo_tpot_s);
        // Confirm on the device: measure the attention at the chosen batch, replace the
        // modelled attention with it, and step down while the measured TPOT misses the SLO.
        if (request.probe && *slo > 0) {
          for (int probe = 0; probe < 3 && *slo > 0; ++probe) {
            const step_time t = speed.decode(static_cast<double>(*slo), context);
            const double layer_model = t.attention_s / in.model.layers;
            const double layer_measured = request.probe(memory, *slo, context);
            const double tpot = t.total_s - t.attention_s + layer_measured * in.model.layers;
            probe_notes.push_back("probe batch " + std::to_string(*slo) + ": attention " +
                                  ms_text(layer_measured) + " ms/layer measured vs " +
                                  ms_text(layer_model) + " modelled, TPOT " + ms_text(tpot) +
                                  " ms");
            if (tpot <= *request.slo_tpot_s) break;
            *slo = static_cast<std::int64_t>(
                std::floor(static_cast<double>(*slo) * *request.slo_tpot_s / tpot));
          }
        }
        if (*slo < limit) {
          chosen = *slo;
          binding = "slo";
        }
      }
      const bool over = context > in.model.max_position_embeddings;
      beyond_model = beyond_model || over;
      std::vector<std::string> row = {tokens_text(context) + (over ? "*" : ""),
                                      bytes_text(seq.kv_bytes),
                                      format_real("%.3f", seq.kv_bytes / dense),
                                      std::to_string(chosen), chosen > 0 ? binding : "-"};
      record rec = base_record(in, method);
      rec.axes["context"] = context;
      rec.case_name = case_name(rec.axes);
      rec.metrics["kv_bytes_per_seq"] = seq.kv_bytes;
      rec.metrics["kv_ratio"] = seq.kv_bytes / dense;
      rec.metrics["max_batch"] = static_cast<double>(limit);
      rec.metrics["weights_bytes"] = memory.weight_bytes();
      rec.metrics["kv_pool_bytes"] = memory.kv_pool_bytes();
      if (slo) rec.metrics["slo_batch"] = static_cast<double>(*slo);
      const step_time ttft = speed.prefill(context);
      rec.metrics["ttft_s"] = ttft.total_s;
      if (chosen > 0) {
        const step_time t = speed.decode(static_cast<double>(chosen), context);
        rec.metrics["tpot_s"] = t.total_s;
        rec.metrics["tokens_per_s_per_gpu"] = static_cast<double>(chosen) / t.total_s / in.tp;
        row.push_back(ms_text(speed.decode(1, context).total_s));
        row.push_back(ms_text(t.total_s));
        row.push_back(format_real("%.0f", static_cast<double>(chosen) / t.total_s / in.tp));
        rec.extra["decode_breakdown_s"] = {
            {"attention", t.attention_s}, {"linear", t.linear_s}, {"communication", t.comm_s}};
      } else {
        row.insert(row.end(), {"-", "-", "-"});
      }
      row.push_back(ms_text(ttft.total_s));
      rec.extra["binding"] =
          chosen > 0 ? binding : (memory.kv_pool_bytes() <= 0 ? "weights" : "kv");
      rec.extra["engine"] = memory.engine_lines(context);
      rec.extra["beyond_model_context"] = over;
      rec.extra["speed_source"] = curves.source();
      if (!probe_notes.empty()) rec.extra["probes"] = probe_notes;
      doc.records.push_back(rec);
      rows.push_back(row);

      // The heatmap's cells: each batch of the grid, its TPOT or what it overflows.
      for (std::int64_t batch : request.batches) {
        record cell = base_record(in, method);
        cell.axes["context"] = context;
        cell.axes["batch"] = batch;
        cell.case_name = case_name(cell.axes);
        const bool fits = batch <= limit;
        cell.metrics["feasible"] = fits ? 1 : 0;
        if (fits) {
          const step_time t = speed.decode(static_cast<double>(batch), context);
          cell.metrics["tpot_s"] = t.total_s;
          cell.metrics["tokens_per_s_per_gpu"] = static_cast<double>(batch) / t.total_s / in.tp;
          if (request.slo_tpot_s && t.total_s > *request.slo_tpot_s) cell.extra["binding"] = "slo";
        } else {
          cell.extra["binding"] = memory.kv_pool_bytes() <= 0 ? "weights" : "kv";
        }
        cell.metrics["kv_bytes_per_seq"] = seq.kv_bytes;
        doc.records.push_back(cell);
      }
    }
    out << text_table({"context", "KV/seq", "xdense", "max batch", "binds", "TPOT@1 ms",
                       "TPOT@max ms", "tok/s/GPU", "TTFT ms"},
                      rows);
    if (beyond_model)
      out << "* beyond " << in.model.display_name << "'s "
          << tokens_text(in.model.max_position_embeddings) << "-token context window\n";
    if (simulated)
      out << "note: this method masks instead of freeing: its KV savings are not physical\n";

    // The other side of the frontier: the longest context each batch reaches.
    std::vector<std::vector<std::string>> ctx_rows;
    for (std::int64_t batch : {1, 8, 32, 128}) {
      const std::int64_t c = max_context(memory, batch);
      const bool capped = c >= k_max_context_searched;
      ctx_rows.push_back(
          {std::to_string(batch), c == 0 ? "-" : (capped ? ">= " : "") + tokens_text(c)});
      record rec = base_record(in, method);
      rec.axes["batch"] = batch;
      rec.case_name = case_name(rec.axes);
      rec.metrics["max_context"] = static_cast<double>(c);
      doc.records.push_back(rec);
    }
    out << "largest context per batch: ";
    for (std::size_t i = 0; i < ctx_rows.size(); ++i)
      out << (i ? ", " : "") << "batch " << ctx_rows[i][0] << " -> " << ctx_rows[i][1];
    out << "\n";

    const std::optional<std::int64_t> eff = speed.efficiency_length(1);
    record eff_rec = base_record(in, method);
    eff_rec.axes["batch"] = 1;
    eff_rec.axes["quantity"] = "efficiency_length";
    eff_rec.case_name = case_name(eff_rec.axes);
    if (eff) {
      eff_rec.metrics["efficiency_length"] = static_cast<double>(*eff);
      out << "efficiency length (decode attention faster than dense, batch 1): "
          << tokens_text(*eff) << " tokens\n";
    } else {
      eff_rec.extra["efficiency_length"] = "never below 4M tokens";
      out << "efficiency length: never below 4M tokens\n";
    }
    doc.records.push_back(eff_rec);
    const std::int64_t probe_context =
        std::min<std::int64_t>(in.model.max_position_embeddings, std::int64_t{1} << 17);
    for (const std::string& line : memory.engine_lines(probe_context))
      out << "engine: " << line << "\n";
  }
  result.table = out.str();
  return result;
}

std::string plan_csv(const report& plan) {
  const std::vector<std::string> axes = {"model",  "gpu",           "tp",      "dtype", "kv_dtype",
                                         "budget", "output_tokens", "context", "batch"};
  const std::vector<std::string> metrics = {
      "kv_bytes_per_seq", "kv_ratio",         "max_batch", "slo_batch",
      "feasible",         "tpot_s",           "ttft_s",    "tokens_per_s_per_gpu",
      "max_context",      "efficiency_length"};
  std::ostringstream os;
  os << "method_spec";
  for (const auto& a : axes) os << "," << a;
  for (const auto& m : metrics) os << "," << m;
  os << ",binding\n";
  os.precision(17);
  for (const record& rec : plan.records) {
    if (rec.suite != "plan") continue;
    os << csv_field(rec.method_spec);
    for (const auto& a : axes) {
      os << ",";
      if (auto it = rec.axes.find(a); it != rec.axes.end())
        os << csv_field(it->is_string() ? it->get<std::string>() : it->dump());
    }
    for (const auto& m : metrics) {
      os << ",";
      if (auto it = rec.metrics.find(m); it != rec.metrics.end() && std::isfinite(it->second))
        os << it->second;
    }
    os << "," << csv_field(rec.extra.value("binding", std::string())) << "\n";
  }
  return os.str();
}

// ---- validation ---------------------------------------------------------------------------

namespace {

double axis_number(const nlohmann::json& axes, const char* key, double fallback) {
  auto it = axes.find(key);
  return it != axes.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

std::vector<validation_row> validate(const report& measured, const device_curves& curves) {
  std::vector<validation_row> rows;
  for (const record& rec : measured.records) {
    if (rec.status != record_status::ok) continue;
    const bool latency = rec.suite == "latency" &&
                         rec.axes.value("phase", std::string()) == "decode" &&
                         !rec.axes.contains("page_size");
    const bool memory_rec = rec.suite == "memory";
    if (!latency && !memory_rec) continue;
    const method_info* info = method_registry::instance().find(rec.method, "cpu");
    if (!info || !info->footprint) continue;
    method_instance method = resolve_method(rec.method_spec, "cpu");
    const plan_inputs in = op_plan_inputs(rec, method);
    const memory_model memory(in);
    const auto length = static_cast<std::int64_t>(axis_number(rec.axes, "length", 0));
    const double batch = axis_number(rec.axes, "batch", 1);
    validation_row row;
    row.method_spec = rec.method_spec;
    row.case_name = rec.case_name;
    if (latency) {
      auto m = rec.metrics.find("median_s");
      if (m == rec.metrics.end()) continue;
      const speed_model speed(memory, curves);
      row.what = "latency";
      row.predicted = speed.attention_layer_s(0, batch, length, length);
      row.measured = m->second;
    } else {
      auto m = rec.metrics.find("measured_bytes");
      if (m == rec.metrics.end() || !(m->second > 0)) continue;
      row.what = "memory";
      row.predicted = batch * memory.layer(0, length, length).kv_bytes;
      row.measured = m->second;
    }
    row.error = row.predicted / row.measured - 1;
    rows.push_back(row);
  }
  return rows;
}

std::string validation_table(const std::vector<validation_row>& rows) {
  std::ostringstream os;
  for (const char* what : {"latency", "memory"}) {
    std::vector<std::vector<std::string>> table;
    std::vector<double> abs_errors;
    for (const validation_row& r : rows) {
      if (r.what != what) continue;
      const bool time = r.what == std::string("latency");
      table.push_back({r.method_spec, r.case_name,
                       time ? format_real("%.1f", r.predicted * 1e6)
                            : format_real("%.2f", r.predicted / 1048576.0),
                       time ? format_real("%.1f", r.measured * 1e6)
                            : format_real("%.2f", r.measured / 1048576.0),
                       (r.error >= 0 ? "+" : "") + format_real("%.1f", 100 * r.error) + "%"});
      abs_errors.push_back(std::abs(r.error));
    }
    if (table.empty()) continue;
    const bool time = what == std::string("latency");
    os << (time ? "decode time per layer (us)" : "resident KV bytes (MiB)") << ", predicted vs "
       << "measured:\n"
       << text_table({"method", "case", "predicted", "measured", "error"}, table);
    std::sort(abs_errors.begin(), abs_errors.end());
    const double median =
        abs_errors.size() % 2
            ? abs_errors[abs_errors.size() / 2]
            : (abs_errors[abs_errors.size() / 2 - 1] + abs_errors[abs_errors.size() / 2]) / 2;
    os << table.size() << " points: median |error| " << format_real("%.1f", 100 * median)
       << "%, max " << format_real("%.1f", 100 * abs_errors.back()) << "%\n\n";
  }
  if (os.str().empty()) os << "no latency decode or memory record with a planning model\n";
  return os.str();
}

}  // namespace attnbench::plan
