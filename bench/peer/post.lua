-- wrk script for run.sh: POSTs a GraphQL request and counts answers that are not a success
-- (HTTP status other than 200, or a body with "errors", a null session or a null userId).
--   BENCH_BODY     the JSON body of every request (the dashboard query), or
--   BENCH_APP_ID   identify mode: each request identifies a new user with a new company
--                  (ids made of BENCH_PREFIX, the thread and a counter), with this appId
--   BENCH_HEADER   optional "Name: value" header (Known's Agent-Secret-Key)
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  failed = 0
  count = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local h = os.getenv("BENCH_HEADER")
  if h and h ~= "" then
    local name, value = h:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
  app = os.getenv("BENCH_APP_ID")
  if app == "" then app = nil end
  prefix = os.getenv("BENCH_PREFIX") or "b"
  if not app then
    wrk.body = os.getenv("BENCH_BODY")
  end
end

local identify = '{"query":"mutation($input: IdentifyInput!) { identify(input: $input) { session { userId } } }",' ..
  '"variables":{"input":{"appId":"%s","userId":"%s","email":"%s@example.com","name":"Bench %s","company":{"id":"c%s","name":"Bench Co %s"}}}}'

function request()
  if not app then
    return wrk.format()
  end
  count = count + 1
  local id = string.format("%s-%d-%d", prefix, tid, count)
  return wrk.format(nil, nil, nil, string.format(identify, app, id, id, id, id, id))
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) or body:find('"session":null', 1, true)
      or body:find('"userId":null', 1, true) then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local f = 0
  for _, t in ipairs(threads) do
    f = f + t:get("failed")
  end
  io.write(string.format("failed_answers %d\n", f))
end
