# Puma config used by puma.sh for the real boot: loads the file under test,
# then moves every bind to loopback / the temp dir so the test never listens
# on other addresses:
#   tcp/ssl://ANY:PORT -> tcp/ssl://127.0.0.1:PORT when PORT == ENV["PORT"],
#                         else 127.0.0.1:<a free port>; unix://PATH -> unix://<tmp>/pumaN.sock
# The rewritten binds are written to ENV["HEADROOM_PUMA_BINDS"] (one a line).
require "uri"
require "socket"
_load_from(ENV.fetch("HEADROOM_PUMA_FILE"))
orig = Array(@options[:binds])
orig = ["tcp://0.0.0.0:#{ENV.fetch('PORT')}"] if orig.empty?
rewritten = orig.each_with_index.map do |b, i|
  u = URI.parse(b)
  if u.scheme == "unix"
    "unix://#{ENV.fetch('HEADROOM_TMP')}/puma#{i}.sock"
  else
    port = u.port.to_s == ENV["PORT"] ? u.port : begin
      s = TCPServer.new("127.0.0.1", 0); p = s.addr[1]; s.close; p
    end
    u.host = "127.0.0.1"
    u.port = port
    u.to_s
  end
end
File.write(ENV.fetch("HEADROOM_PUMA_BINDS"), rewritten.join("\n") + "\n")
clear_binds!
rewritten.each { |b| bind b }
