-- wrk script of bench/run.sh: replays the requests of a file and reports
-- one machine-readable line. Configured by the environment:
--
--   REQUESTS  file of requests, one a line: METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY
--             (TOKEN "-" for none, else sent as "Authorization: Bearer TOKEN";
--             a POST body is sent as application/json). Each thread starts at
--             its own place in the file and cycles through it. A body holding
--             __UNIQUE__ gets a value unique to the wrk run, the thread and
--             the request instead (for registrations).
--   UNIQUE    prefix of those values, different for every wrk run
--   CHECK     "1": an answer other than 200, or a body holding "errors", is
--             an error (GraphQL answers 200 with errors), and one holding
--             "RATE_LIMITED" is also counted as shed; "0": only wrk's own
--             count of non-2xx/3xx answers (the ceilings)
--   DELAY_MS  when set, a random pause of 0..2×DELAY_MS ms before each
--             request of a connection (about DELAY_MS on average), to hold
--             a rate instead of saturating
--   LABEL     the scenario's name, echoed in the report line
--
-- done() prints `BENCH {json}`: requests, bad answers, the shed ones among
-- them, errors (the bad answers plus socket errors and timeouts), duration
-- and latency percentiles in microseconds.

local requests_file = os.getenv("REQUESTS")
local unique = os.getenv("UNIQUE") or tostring(os.time())
local check = os.getenv("CHECK") ~= "0"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
local label = os.getenv("LABEL") or "unnamed"

-- main state: every thread, to add up their counts in done()
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

-- thread state
bench_errors = 0
bench_shed = 0
local prepared = {}
local templates = {}
local position = 0
local counter = 0

local function load(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open REQUESTS file " .. tostring(path))
  for line in f:lines() do
    if line ~= "" then
      local method, reqpath, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      assert(method, "bad line in " .. path .. ": " .. line:sub(1, 80))
      table.insert(lines, { method = method, path = reqpath, token = token, body = body })
    end
  end
  f:close()
  assert(#lines > 0, "no requests in " .. path)
  return lines
end

local function headers_of(entry)
  local headers = {}
  if entry.method == "POST" then
    headers["Content-Type"] = "application/json"
  end
  if entry.token ~= "-" then
    headers["Authorization"] = "Bearer " .. entry.token
  end
  return headers
end

function init(args)
  local id = tonumber(tid) or 0
  math.randomseed(os.time() + id * 7919)
  for i, entry in ipairs(load(requests_file)) do
    local body = entry.body ~= "" and entry.body or nil
    if body and body:find("__UNIQUE__", 1, true) then
      templates[i] = entry
      prepared[i] = false
    else
      prepared[i] = wrk.format(entry.method, entry.path, headers_of(entry), body)
    end
  end
  position = math.random(#prepared) - 1
end

function request()
  position = position % #prepared + 1
  local ready = prepared[position]
  if ready then
    return ready
  end
  local entry = templates[position]
  counter = counter + 1
  local value = unique .. "-t" .. tostring(tid) .. "-" .. counter
  local body = entry.body:gsub("__UNIQUE__", value)
  return wrk.format(entry.method, entry.path, headers_of(entry), body)
end

if check then
  function response(status, headers, body)
    if status ~= 200 or (body and body:find('"errors"', 1, true)) then
      bench_errors = bench_errors + 1
      if body and body:find('"RATE_LIMITED"', 1, true) then
        bench_shed = bench_shed + 1
      end
    end
  end
end

if delay_ms and delay_ms > 0 then
  local most = math.floor(2 * delay_ms + 0.5)
  function delay()
    return math.random(0, most)
  end
end

function done(summary, latency, _)
  local counted, shed = 0, 0
  for _, thread in ipairs(threads) do
    counted = counted + (tonumber(thread:get("bench_errors")) or 0)
    shed = shed + (tonumber(thread:get("bench_shed")) or 0)
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local bad = check and counted or e.status
  local p = function(q) return latency:percentile(q) end
  io.write(string.format(
    'BENCH {"label":"%s","requests":%.0f,"errors":%.0f,"bad_responses":%.0f,"shed":%.0f,"socket_errors":%.0f,' ..
    '"timeouts":%.0f,"non_2xx":%.0f,"duration_us":%.0f,"mean_us":%.1f,"p50_us":%.0f,' ..
    '"p90_us":%.0f,"p95_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\n',
    label, summary.requests, socket + bad, bad, shed, socket, e.timeout, e.status, summary.duration,
    latency.mean, p(50), p(90), p(95), p(99), latency.max))
end
