/// Values computed once per key by the first caller and shared with every later or concurrent
/// caller: the per-case values of `probes` and `stats`, which describe the Q/K/V source and not
/// the method, so every method's record repeats them. Thread-safe; when the computation throws,
/// every caller of that key gets the exception.
#pragma once

#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace attnbench {

template <class T>
class shared_results {
 public:
  /// The value of `key`, made by `make()` (returning a pointer to T) on the first call.
  template <class Make>
  std::shared_ptr<const T> get(const std::string& key, Make&& make) const {
    std::promise<std::shared_ptr<const T>> promise;
    std::shared_future<std::shared_ptr<const T>> future;
    bool compute = false;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      auto it = m_results.find(key);
      if (it == m_results.end()) {
        future = promise.get_future().share();
        m_results.emplace(key, future);
        compute = true;
      } else {
        future = it->second;
      }
    }
    if (compute) {
      try {
        promise.set_value(make());
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
    }
    return future.get();
  }

 private:
  mutable std::mutex m_mutex;
  mutable std::map<std::string, std::shared_future<std::shared_ptr<const T>>> m_results;
};

}  // namespace attnbench
