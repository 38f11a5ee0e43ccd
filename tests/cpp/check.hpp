// Check helpers for the C++ wrapper tests: "ok N - name" / "not ok N -
// name" lines and a final "P passed, F failed" line (what tests/c_api.rs
// reads), exit status 1 if anything failed.
#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace check {

inline std::mutex mu;
inline int count = 0, passed = 0, failed = 0;

inline bool that(bool cond, const std::string &name) {
    std::lock_guard<std::mutex> g(mu);
    ++count;
    if (cond) {
        ++passed;
        std::printf("ok %d - %s\n", count, name.c_str());
    } else {
        ++failed;
        std::printf("not ok %d - %s\n", count, name.c_str());
    }
    std::fflush(stdout);
    return cond;
}

inline int summary() {
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

} // namespace check
