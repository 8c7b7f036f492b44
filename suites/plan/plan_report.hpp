/// `attnbench plan`'s results (DESIGN §8): the frontier of one model on one GPU for each method,
/// as records of suite `plan` (schema-validated like every report) and as the table printed on
/// the terminal; and the validation of the models against measured latency and memory records.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness/record.hpp"
#include "suites/plan/plan_model.hpp"

namespace attnbench::plan {

struct plan_request {
  plan_inputs base;  // everything but the method
  std::vector<method_instance> methods;
  std::vector<std::int64_t> contexts;  // the frontier's rows (tokens)
  std::vector<std::int64_t> batches;   // the heatmap's columns (sequences per GPU group)
  std::optional<double> slo_tpot_s;    // --slo-tpot-ms
  /// Measures one layer's decode attention of `method` at (batch, context) on the device, for
  /// the SLO search's confirmation probes (at most 3 per context); unset: no GPU.
  std::function<double(const memory_model&, std::int64_t batch, std::int64_t context)> probe;
};

struct plan_result {
  report doc;         // records of suite "plan", meta filled by the caller
  std::string table;  // what the terminal shows
};

/// The frontier, per method: for each context the largest batch that fits and the term that
/// binds it, TPOT, TTFT and tokens/s; the cells of (context x batch) with their TPOT or the term
/// that makes them infeasible; the largest context per batch; the efficiency length; the lines
/// the engine would print.
plan_result run_plan(const plan_request& request, const device_curves& curves);

/// The plan's records as RFC 4180 CSV, one row per record: the frontier rows (context), the
/// heatmap cells (context and batch), the largest context per batch, the efficiency length.
std::string plan_csv(const report& plan);

/// Contexts 4K, 8K, ..., 1M (powers of two).
std::vector<std::int64_t> default_contexts();
/// Batches 1, 2, 4, ..., 1024.
std::vector<std::int64_t> default_batches();

/// Predicted against measured: for each ok record of suite `latency` (decode) or `memory` in
/// `measured` whose method has a footprint, the model's figure (calibrated on `curves`) at the
/// record's shape, and the signed error (predicted / measured - 1). Returns the table text;
/// fills `errors` with (record case and method, latency or memory, signed error).
struct validation_row {
  std::string what;  // "latency" or "memory"
  std::string method_spec;
  std::string case_name;
  double predicted = 0;
  double measured = 0;
  double error = 0;  // predicted / measured - 1
};
std::vector<validation_row> validate(const report& measured, const device_curves& curves);
std::string validation_table(const std::vector<validation_row>& rows);

}  // namespace attnbench::plan
