-- wrk script of scripts/bench-services.sh: POST /order/pay for the users
-- PAY_FIRST, PAY_FIRST+1, ... (environment), each once. Their carts were
-- filled beforehand (scripts/bench/carts.py: one line each, already on
-- service B), so every payment pays a one-line cart. No Idempotency-Key;
-- the caller's headers come from wrk -H.
--
-- Thread i (0-based) of PAY_THREADS (wrk -t) pays PAY_FIRST+i,
-- PAY_FIRST+i+PAY_THREADS, ...; at the end, the highest user id sent is
-- written to the file PAY_STATE: the next run starts after it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local first = tonumber(os.getenv("PAY_FIRST"))
local step = tonumber(os.getenv("PAY_THREADS"))
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
end

function request()
  local user = first + id + sent * step
  sent = sent + 1
  return wrk.format(nil, nil, nil, string.format('{"user_id":%d}', user))
end

function done(summary, latency, requests)
  local top = first - 1
  for _, t in ipairs(threads) do
    local n = t:get("sent")
    if n and n > 0 then
      top = math.max(top, first + t:get("id") + (n - 1) * step)
    end
  end
  local f = assert(io.open(os.getenv("PAY_STATE"), "w"))
  f:write(string.format("%d\n", top))
  f:close()
end
