#include <catch2/catch.hpp>

#include "datasets/scoring.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"

using namespace attnbench;

TEST_CASE("numbers tokenize in chunks of at most three digits", "[vocabulary]") {
  const auto& v = vocabulary::instance();
  auto ids = v.tokenize("1234567");
  REQUIRE(ids.size() == 3);
  CHECK(v.text(ids[0]) == "123");
  CHECK(v.text(ids[1]) == "456");
  CHECK(v.text(ids[2]) == "7");
  CHECK(v.detokenize(ids) == "1234567");
}

TEST_CASE("uuids tokenize in hex chunks and detokenize back", "[vocabulary]") {
  const auto& v = vocabulary::instance();
  std::string uuid = "3f2a9c1e-0b7d-4e21-9a5c-12ab34cd56ef";
  auto ids = v.tokenize(uuid);
  CHECK(ids.size() > 10);
  CHECK(v.detokenize(ids) == uuid);
  // Two-letter chunks that spell words ("be", "ad") share the word's id and stay glued inside
  // a hex run; the same word between words keeps its spaces.
  const std::string wordy = "50661d2f-8592-4009-8b74-3abe85ba2b5d";
  CHECK(v.detokenize(v.tokenize(wordy)) == wordy);
  CHECK(v.detokenize(v.tokenize("to be or")) == "to be or");
  // ... and at the end of a UUID, alone or before the sentence's period.
  const std::string tail = "c3295703-05db-a68a-505d-2229f98c67be";
  CHECK(v.detokenize(v.tokenize(tail)) == tail);
  CHECK(v.detokenize(v.tokenize(tail + ".")) == tail + ".");
  CHECK(v.detokenize(v.tokenize("it is 42 be")) == "it is 42 be");
}

TEST_CASE("words are one token; unknown words are rejected", "[vocabulary]") {
  const auto& v = vocabulary::instance();
  auto ids = v.tokenize("The grass is green.");
  REQUIRE(ids.size() == 5);
  CHECK(v.detokenize(ids) == "the grass is green.");
  CHECK(v.cls(v.keys().front()) == token_class::key);
  CHECK_THROWS_AS(v.tokenize("zzqxv"), error);
  CHECK(v.bos() == 0);
  CHECK(v.size() > 4000);
}

TEST_CASE("RULER string matching", "[scoring]") {
  CHECK(string_match_all("The number is 1234567.", {"1234567"}) == 1.0);
  CHECK(string_match_all("1234567 and 42", {"1234567", "43"}) == 0.5);
  CHECK(string_match_all("nothing", {"1234567"}) == 0.0);
  CHECK(string_match_all("ABC", {"abc"}) == 1.0);
  CHECK(string_match_part("x 43", {"1234567", "43"}) == 1.0);
  CHECK(string_match_part("x", {"1234567", "43"}) == 0.0);
}
