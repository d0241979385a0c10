-- wrk script for scripts/compare.sh: after wrk's own report, one line of
-- JSON with what the comparison records (latency in µs, from wrk's
-- histogram). It defines no request or response function, so wrk sends
-- its one prepared request and does not call Lua per request.
--
--   wrk -t1 -c50 -d5s --latency -s bench/compare/wrk-report.lua URL

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"requests_per_s":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency":{"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.duration > 0 and summary.requests * 1e6 / summary.duration or 0,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
