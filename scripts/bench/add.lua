-- wrk script of scripts/bench-services.sh: POST /cart/add of one unit of
-- product 1 for a random user among 100,000 (users 1 to 100000). No
-- Idempotency-Key, unless ADD_KEYS=1 (environment): then every request
-- carries a key of its own. The caller's headers come from wrk -H: a bearer
-- token through the gateway, an identity assertion on a direct call.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local keyed = os.getenv("ADD_KEYS") == "1"
local run = tostring(os.time())
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  -- A seed of its own for every thread, so that the threads' users differ.
  math.randomseed(os.time() + (id or 0) * 7919)
  sent = 0
end

function request()
  local body = string.format('{"user_id":%d,"product_id":1,"quantity":1}', math.random(1, 100000))
  if not keyed then
    return wrk.format(nil, nil, nil, body)
  end
  sent = sent + 1
  -- wrk.format replaces wrk.headers (the -H headers) with the table given.
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", run, id, sent)
  return wrk.format(nil, nil, headers, body)
end
