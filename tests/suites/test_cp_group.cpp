// The cp suite's threads process group (suites/cp/cp_comm.hpp): collectives across threads give
// every rank the same answer, and a rank that fails releases the others and its error surfaces.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "harness/error.hpp"
#include "suites/cp/cp_comm.hpp"

using attnbench::error;
using attnbench::error_id;
using attnbench::cp::process_group;
using attnbench::cp::run_thread_ranks;

TEST_CASE("threads group: broadcast, max, sum, gather across ranks", "[cp]") {
  for (int ranks : {1, 2, 3, 5}) {
    std::atomic<int> agreed{0};
    const int status = run_thread_ranks(ranks, [&](process_group& g) {
      // Catch2's assertions are not thread-safe: the threads only compute, the test checks.
      char id[32] = {};
      if (g.rank() == ranks - 1) std::snprintf(id, sizeof id, "root-%d", ranks - 1);
      g.broadcast(id, sizeof id, ranks - 1);
      const double mx = g.max(static_cast<double>(g.rank() * 10));
      const double sm = g.sum(static_cast<double>(g.rank() + 1));
      const auto all = g.gather(std::to_string(g.rank() * 7));
      g.barrier();
      bool ok = g.size() == ranks && std::string(g.kind()) == "threads" &&
                std::string(id) == "root-" + std::to_string(ranks - 1) &&
                mx == 10.0 * (ranks - 1) && sm == ranks * (ranks + 1) / 2.0;
      if (g.rank() == 0) {
        ok = ok && static_cast<int>(all.size()) == ranks;
        for (int r = 0; ok && r < ranks; ++r) ok = all[static_cast<std::size_t>(r)] == std::to_string(r * 7);
      } else {
        ok = ok && all.empty();
      }
      if (ok) ++agreed;
      return g.rank() == 1 ? 3 : 0;  // the largest status is returned
    });
    CHECK(agreed == ranks);
    CHECK(status == (ranks > 1 ? 3 : 0));
  }
}

TEST_CASE("threads group: a failing rank releases the others and its error is rethrown", "[cp]") {
  std::atomic<int> released{0};
  try {
    run_thread_ranks(4, [&](process_group& g) {
      if (g.rank() == 2) ATTNBENCH_BAD_INPUT("rank two cannot go on");
      try {
        g.barrier();  // never completes: rank 2 does not arrive
        g.max(1.0);
      } catch (...) {
        ++released;
        throw;
      }
      return 0;
    });
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.id() == error_id::bad_input);
    CHECK(std::string(e.what()).find("rank two") != std::string::npos);
  }
  CHECK(released == 3);
}

TEST_CASE("threads group: at least one rank", "[cp]") {
  CHECK_THROWS_AS(run_thread_ranks(0, [](process_group&) { return 0; }), error);
}
