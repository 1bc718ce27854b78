// Constants shared with bench/common.py. The secret comes from bench/run.py (BENCH_JWT_SECRET) so that it
// has one source; the rest must match common.py.
"use strict";

module.exports = {
  JWT_SECRET: process.env.BENCH_JWT_SECRET || "",
  NAMESPACE: "/dashboard",
  EVENT: "dashboard:recentMocAdded",
  TITLE_PREFIX: "bench:",
  USER_PREFIX: "u",
  LISTEN_BACKLOG: 1024,
  // Wall-clock milliseconds with microsecond resolution; every process on the machine reads the same clock.
  nowMs: () => performance.timeOrigin + performance.now(),
};
