-- Rotate through representative discovery queries.
local paths = {
  "/api/streams/search?q=speedrun",
  "/api/streams/search?q=chill%20music",
  "/api/streams/search?q=cod",
  "/api/streams/search?q=tournment",
  "/api/streams/search?category=games&live=true",
  "/api/streams/search?live=true",
  "/api/streams/search?tag=rust",
  "/api/streams/search?q=rust&live=true&language=en",
  "/api/streams/search",
  "/api/streams/search?q=user42",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
